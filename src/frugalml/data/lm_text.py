"""Text for language models: plain text (one document per line, or a raw file) or JSONL prompts.

``read_text(path)`` returns an ``LMText``: ``raw`` (what perplexity and fidelity score: the
file as it is, or the JSONL texts joined by blank lines) and ``prompts`` (one per non-blank
line, or one per JSONL row: its ``prompt`` or ``text`` field, or the row itself when it is a
string), which ``generation`` runs. ``token_windows`` cuts the token stream of ``raw`` into
fixed windows with a stride; a text shorter than one window is refused in one line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from frugalml.errors import BadInput

PROMPT_KEYS = ("prompt", "text")


@dataclass(frozen=True)
class LMText:
    raw: str
    prompts: tuple[str, ...]
    source: str = ""


def from_texts(texts: list[str], source: str = "") -> LMText:
    clean = [t for t in (str(x).strip() for x in texts) if t]
    return LMText(raw="\n\n".join(clean), prompts=tuple(clean), source=source)


def read_text(path: str | Path, *, encoding: str | None = None) -> LMText:
    """Read ``path`` (``.jsonl``: prompts; anything else: plain text)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise BadInput(f"data file not found: {p}", hint="check the path given to --data")
    try:
        text = p.read_text(encoding=encoding or "utf-8")
    except (OSError, UnicodeDecodeError, LookupError) as e:
        raise BadInput(f"cannot read {p} as text: {e}", hint="give UTF-8 text or --encoding") from e
    if p.suffix.lower() == ".jsonl":
        return _jsonl(p, text)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise BadInput(f"{p} holds no text", hint="give plain text or JSONL prompts")
    return LMText(raw=text, prompts=tuple(lines), source=str(p))


def _jsonl(p: Path, text: str) -> LMText:
    texts: list[str] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row: Any = json.loads(line)
        except json.JSONDecodeError as e:
            raise BadInput(f"{p} line {n} is not JSON: {e.msg}") from e
        if isinstance(row, str):
            texts.append(row)
            continue
        value = next((row.get(k) for k in PROMPT_KEYS if isinstance(row, dict) and k in row), None)
        if not isinstance(value, str):
            raise BadInput(
                f"{p} line {n} has no 'prompt' or 'text' string",
                hint='give one {"prompt": "..."} (or {"text": "..."}) object per line',
            )
        texts.append(value)
    if not any(t.strip() for t in texts):
        raise BadInput(f"{p} holds no prompts", hint='give one {"prompt": "..."} per line')
    return from_texts(texts, source=str(p))


def tokens_of(tokenizer: Any, text: str, need: int) -> np.ndarray:
    """The first ``need`` (or more) token ids of ``text`` (no special tokens), int64."""
    chars = max(need * 8, 4096)
    while True:
        part = text[:chars]
        ids = tokenizer(part, add_special_tokens=False)["input_ids"]
        if len(ids) >= need or chars >= len(text):
            return np.asarray(ids, dtype=np.int64)
        chars *= 2


def token_windows(
    tokenizer: Any, text: LMText, *, window: int, stride: int, max_windows: int
) -> tuple[np.ndarray, list[int]]:
    """(windows (k, window) of token ids, how many tokens of each are newly scored).

    Window ``i`` starts at ``i * stride``; it scores its tokens not scored by the window
    before (all but the first token for the first one; the last ``stride`` when
    ``stride < window``). ``k`` is at most ``max_windows`` and at least 1.
    """
    if window < 2 or stride < 1 or stride > window or max_windows < 1:
        raise BadInput(
            f"bad window settings: window {window}, stride {stride}, windows {max_windows}",
            hint="window >= 2, 1 <= stride <= window, windows >= 1",
        )
    ids = tokens_of(tokenizer, text.raw, window + stride * (max_windows - 1))
    if len(ids) < window:
        raise BadInput(
            f"{text.source or 'the text'} has {len(ids)} tokens, shorter than one "
            f"{window}-token window",
            hint="give more text or a smaller --window",
        )
    starts = list(range(0, len(ids) - window + 1, stride))[:max_windows]
    rows = np.stack([ids[s : s + window] for s in starts])
    scored = [window - 1] + [min(stride, window - 1)] * (len(starts) - 1)
    return rows, scored
