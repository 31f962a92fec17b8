"""Real human-written text on every machine: the Python standard library's docstrings.

The demo and tests need unlabelled English text that frugal did not write and that exists
without a download. The docstrings of the standard library (read with ``ast``, nothing is
imported or run) are exactly that: prose written by CPython's developers.

``file_sentences`` reads the same kind of sentences from a user's plain-text file (``optimize
--extra-text``: WikiText-2, a product's own logs), split and filtered the same way.
"""

from __future__ import annotations

import ast
import functools
import random
import re
import sysconfig
from pathlib import Path

# Modules with plenty of prose in their docstrings; read in this order.
MODULES = (
    "argparse",
    "asyncio/events",
    "calendar",
    "collections/__init__",
    "configparser",
    "contextlib",
    "csv",
    "dataclasses",
    "datetime",
    "decimal",
    "difflib",
    "email/message",
    "fractions",
    "functools",
    "gettext",
    "heapq",
    "http/client",
    "imaplib",
    "inspect",
    "ipaddress",
    "logging/__init__",
    "mailbox",
    "pathlib",
    "pickle",
    "pprint",
    "random",
    "shutil",
    "smtplib",
    "socket",
    "statistics",
    "string",
    "subprocess",
    "tarfile",
    "tempfile",
    "textwrap",
    "threading",
    "typing",
    "unittest/case",
    "urllib/parse",
    "uuid",
    "zipfile",
)

_SPACE = re.compile(r"\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def _docstrings(path: Path) -> list[str]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return []
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node)
            if doc:
                out.append(doc)
    return out


def stdlib_sentences(
    n: int | None = None, *, seed: int = 0, min_chars: int = 30, max_chars: int = 300
) -> list[str]:
    """Distinct prose sentences from standard-library docstrings (code lines skipped).

    With ``n``, a seeded sample of ``n`` of them. Raises ``RuntimeError`` if the standard
    library's sources are not installed (some slim images strip them).
    """
    sentences = list(_all_sentences(min_chars, max_chars))
    if n is not None and n < len(sentences):
        sentences = random.Random(seed).sample(sentences, n)
    return sentences


def file_sentences(
    path: str | Path,
    n: int | None = None,
    *,
    seed: int = 0,
    min_chars: int = 30,
    max_chars: int = 300,
) -> list[str]:
    """Distinct prose sentences of a UTF-8 text file (one document per line or running text),
    split and filtered as ``stdlib_sentences`` does; WikiText's ``= Heading =`` lines are
    skipped. With ``n``, a seeded sample of ``n`` of them. ``ValueError`` when the file has
    none (a binary or non-prose file), ``OSError`` when it cannot be read."""
    seen: set[str] = set()
    sentences: list[str] = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            text = line.strip()
            if not text or (text.startswith("=") and text.endswith("=")):
                continue
            for sentence in _SENTENCE_END.split(_SPACE.sub(" ", text)):
                if _prose(sentence, min_chars, max_chars) and sentence not in seen:
                    seen.add(sentence)
                    sentences.append(sentence)
    if not sentences:
        raise ValueError(
            f"{path}: no prose sentences of {min_chars}-{max_chars} characters (is it plain text?)"
        )
    if n is not None and n < len(sentences):
        sentences = random.Random(seed).sample(sentences, n)
    return sentences


def _prose(sentence: str, min_chars: int, max_chars: int) -> bool:
    """A sentence of the right length that is mostly letters and has a space (not code)."""
    if not (min_chars <= len(sentence) <= max_chars):
        return False
    letters = sum(c.isalpha() for c in sentence)
    return letters >= 0.7 * len(sentence) * 0.8 and " " in sentence


@functools.cache
def _all_sentences(min_chars: int, max_chars: int) -> tuple[str, ...]:
    root = Path(sysconfig.get_paths()["stdlib"])
    seen: set[str] = set()
    sentences: list[str] = []
    for name in MODULES:
        path = root / f"{name}.py"
        for doc in _docstrings(path):
            for para in doc.split("\n\n"):
                if para.lstrip().startswith((">>>", "...", "$", "-", "*", ":")):
                    continue
                for sentence in _SENTENCE_END.split(_SPACE.sub(" ", para).strip()):
                    if not _prose(sentence, min_chars, max_chars):
                        continue  # too short or long, or mostly code or symbols
                    if sentence not in seen:
                        seen.add(sentence)
                        sentences.append(sentence)
    if not sentences:
        raise RuntimeError(f"no standard-library sources found under {root}")
    return tuple(sentences)
