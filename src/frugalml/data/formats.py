"""Read evaluation and training data: CSV, TSV, JSONL, STS-B TSV and ``label text`` lines.

``load_data(path)`` recognises without flags:

- **STS-B TSV** (no header; genre, file, year, id, score 0-5, sentence1, sentence2, and on some
  rows extra trailing fields): sentence pairs with a gold score.
- **label text lines** (``1 a fine film``; TREC's ``DESC:manner How did ...``): one labelled
  text per line. TREC's ``COARSE:fine`` labels are cut to the coarse class (TREC-6).
- **CSV / TSV with a header** and **JSONL**: columns found by name (``text``/``sentence``/
  ``sentence1``, ``text2``/``sentence2``, ``label``, ``score``) or given with the options.

Text is UTF-8; a file that is not valid UTF-8 is read as ISO-8859-1 (TREC is), says so in
``Dataset.encoding`` and warns (``EncodingFallback``): a file in another encoding (Shift-JIS,
UTF-16 without a BOM...) would be mojibake, and ``--encoding`` names the right one. Problems are
``BadInput`` errors that name the file and what to fix; ``option`` names the command-line
option (or argument) the path came from, so the hint says which one to check.
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from frugalml.errors import BadInput

Format = Literal["auto", "stsb", "label-text", "csv", "tsv", "jsonl"]
FORMATS: tuple[str, ...] = ("auto", "stsb", "label-text", "csv", "tsv", "jsonl")

TEXT_NAMES = ("text", "sentence", "sentence1", "text1", "question", "premise", "query")
TEXT2_NAMES = ("text2", "sentence2", "hypothesis", "passage", "document")
LABEL_NAMES = ("label", "labels", "class", "category", "target", "y")
SCORE_NAMES = ("score", "similarity", "gold", "relatedness")
_LABEL_TEXT = re.compile(r"^(\S{1,40})\s+(\S.*)$")
STSB_SCORE_RANGE = (0.0, 5.0)


class EncodingFallback(UserWarning):
    """A data file was not valid UTF-8 and was read as ISO-8859-1 (maybe as mojibake)."""


@dataclass(frozen=True)
class Dataset:
    """Rows of one data file. ``texts2``/``scores`` for pairs, ``labels`` for classification.

    All sequences have the same length. ``texts_all()`` gives every text (both sides of a
    pair), for tasks and passes that need unlabelled text (fidelity, distillation,
    calibration).
    """

    texts: tuple[str, ...]
    texts2: tuple[str, ...] | None = None
    scores: tuple[float, ...] | None = None
    labels: tuple[str, ...] | None = None
    source: str = ""
    format: str = ""
    encoding: str = "utf-8"

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def is_pairs(self) -> bool:
        return self.texts2 is not None

    def texts_all(self) -> list[str]:
        out = list(self.texts)
        if self.texts2 is not None:
            out.extend(self.texts2)
        return out

    def label_names(self) -> list[str]:
        """Sorted distinct labels (numeric order when all labels are integers)."""
        if self.labels is None:
            return []
        names = set(self.labels)
        if all(re.fullmatch(r"-?\d+", n) for n in names):
            return sorted(names, key=int)
        return sorted(names)

    def take(self, indices: Sequence[int]) -> Dataset:
        """The rows at ``indices``, in that order."""

        def pick(seq: tuple | None) -> tuple | None:
            return None if seq is None else tuple(seq[i] for i in indices)

        return replace(
            self,
            texts=tuple(self.texts[i] for i in indices),
            texts2=pick(self.texts2),
            scores=pick(self.scores),
            labels=pick(self.labels),
        )

    def split(self, test_fraction: float, seed: int = 0) -> tuple[Dataset, Dataset]:
        """(train, test): a seeded shuffle split; stratified by label when there are labels."""
        if not 0 < test_fraction < 1:
            raise ValueError("test_fraction must be between 0 and 1")
        rng = random.Random(seed)
        groups: dict[str, list[int]] = {}
        for i in range(len(self)):
            groups.setdefault(self.labels[i] if self.labels else "", []).append(i)
        train: list[int] = []
        test: list[int] = []
        for key in sorted(groups):
            idx = groups[key]
            rng.shuffle(idx)
            n_test = round(len(idx) * test_fraction)
            if len(idx) > 1:
                n_test = min(max(n_test, 1), len(idx) - 1)
            test.extend(idx[:n_test])
            train.extend(idx[n_test:])
        return self.take(sorted(train)), self.take(sorted(test))

    def sample(self, n: int, seed: int = 0) -> Dataset:
        """At most ``n`` rows, chosen with a seeded shuffle (order of the file kept)."""
        if n >= len(self):
            return self
        return self.take(sorted(random.Random(seed).sample(range(len(self)), n)))


def _check_hint(option: str | None) -> str:
    if option is None:
        return "check the path"
    return f"check the path given {'to' if option.startswith('-') else 'as'} {option}"


def _read_text(path: Path, encoding: str | None, option: str | None) -> tuple[str, str]:
    try:
        raw = path.read_bytes()
    except IsADirectoryError as e:
        raise BadInput(f"{path} is a folder, not a data file", hint=_check_hint(option)) from e
    except OSError as e:
        raise BadInput(
            f"cannot read data file {path}: {e.strerror}", hint=_check_hint(option)
        ) from e
    if encoding:
        try:
            return raw.decode(encoding), encoding
        except (UnicodeDecodeError, LookupError) as e:
            raise BadInput(
                f"{path} is not valid {encoding}: {e}",
                hint="pass the right --encoding (e.g. utf-8, iso-8859-1)",
            ) from e
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in raw[:4096]:
        raise BadInput(
            f"{path} looks like UTF-16 or a binary file, not text",
            hint="save it as UTF-8 text, or pass --encoding utf-16",
        )
    try:
        return raw.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError as e:
        warnings.warn(
            EncodingFallback(
                f"{path} is not valid UTF-8 (byte {e.start}); read it as ISO-8859-1 — pass "
                "--encoding if it is another encoding (e.g. shift_jis, cp1252)"
            ),
            stacklevel=3,
        )
        return raw.decode("iso-8859-1"), "iso-8859-1"  # decodes any byte string


def _float(value: str) -> float | None:
    try:
        f = float(value)
    except ValueError:
        return None
    return f if math.isfinite(f) else None


def _stsb_score(cell: str) -> float | None:
    s = _float(cell)
    lo, hi = STSB_SCORE_RANGE
    return s if s is not None and lo <= s <= hi else None


def _looks_like_stsb(rows: list[list[str]]) -> bool:
    """7+ tab fields per row and a number in column 5: in 0-5 on most rows, and on the rest
    at worst a bad number (NaN, out of range) or blank — which ``_read_stsb`` then names,
    rather than the file passing for a headerless TSV. A word there (a header) is not STS-B."""

    def numberish(cell: str) -> bool:
        text = cell.strip()
        if not text:
            return True
        try:
            float(text)
        except ValueError:
            return False
        return True

    if not all(len(r) >= 7 and numberish(r[4]) for r in rows):
        return False
    return sum(_stsb_score(r[4]) is not None for r in rows) * 2 > len(rows)


def _sniff(path: Path, text: str) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    lines = [ln for ln in text.splitlines()[:50] if ln.strip()]
    if not lines:
        return "csv"
    if lines[0].lstrip().startswith("{"):
        return "jsonl"
    if _looks_like_stsb([ln.split("\t") for ln in lines]):
        return "stsb"
    if "\t" not in text[:10000] and all(_LABEL_TEXT.match(ln) for ln in lines):
        first = lines[0].split()[0]
        if "," not in first and not first.endswith(":"):
            return "label-text"
    return "tsv" if suffix == ".tsv" or lines[0].count("\t") > lines[0].count(",") else "csv"


def load_data(
    path: str | Path,
    *,
    format: Format = "auto",
    text_col: str | None = None,
    text2_col: str | None = None,
    label_col: str | None = None,
    score_col: str | None = None,
    encoding: str | None = None,
    fine_labels: bool = False,
    option: str | None = None,
) -> Dataset:
    """Read a data file into a ``Dataset``; see the module docstring for the formats.

    Column options name a header column (CSV/TSV/JSONL) or give a 0-based index for files
    without a header. ``fine_labels`` keeps TREC's ``COARSE:fine`` labels whole. ``option``
    names where the path came from (``--eval``, ``DATA``) for the hints of errors about it.
    Warns with ``EncodingFallback`` when a file that is not UTF-8 is read as ISO-8859-1.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise BadInput(f"data file not found: {p}", hint=_check_hint(option))
    if format not in FORMATS:
        raise BadInput(f"unknown data format '{format}'", hint=f"use one of {', '.join(FORMATS)}")
    text, used_encoding = _read_text(p, encoding, option)
    fmt = _sniff(p, text) if format == "auto" else format
    if fmt == "stsb":
        ds = _read_stsb(p, text)
    elif fmt == "label-text":
        ds = _read_label_text(p, text, fine_labels)
    elif fmt == "jsonl":
        ds = _read_jsonl(p, text, text_col, text2_col, label_col, score_col)
    else:
        ds = _read_delimited(
            p, text, "\t" if fmt == "tsv" else ",", text_col, text2_col, label_col, score_col
        )
    if len(ds) == 0:
        raise BadInput(f"{p} has no data rows", hint="check the file and its format")
    return replace(ds, source=str(p), format=fmt, encoding=used_encoding)


def _read_stsb(path: Path, text: str) -> Dataset:
    s1: list[str] = []
    s2: list[str] = []
    scores: list[float] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) < 7:
            raise BadInput(
                f"{path}:{n}: not an STS-B row ({len(cols)} tab-separated fields; STS-B has "
                "the score in field 5, sentences in 6-7)",
                hint="pass --format csv/tsv with column options for other layouts",
            )
        score = _stsb_score(cols[4])
        if score is None:
            raise BadInput(
                f"{path}: row {n}, score cell (field 5) is {cols[4]!r}, not a number in 0-5",
                hint="fix or remove that row (or, for another layout, pass --format tsv "
                "with column options)",
            )
        scores.append(score)
        s1.append(cols[5].strip())
        s2.append(cols[6].strip())
    return Dataset(texts=tuple(s1), texts2=tuple(s2), scores=tuple(scores))


def _read_label_text(path: Path, text: str, fine: bool) -> Dataset:
    labels: list[str] = []
    texts: list[str] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = _LABEL_TEXT.match(line.strip())
        if not m:
            raise BadInput(f"{path}:{n}: expected 'label text', got {line[:60]!r}")
        label, body = m.group(1), m.group(2).strip()
        if not fine and re.fullmatch(r"[A-Z]+:\S+", label):
            label = label.split(":", 1)[0]
        labels.append(label)
        texts.append(body)
    return Dataset(texts=tuple(texts), labels=tuple(labels))


def _pick(
    columns: list[str],
    explicit: str | None,
    names: Sequence[str],
    what: str,
    path: Path,
    required: bool,
) -> str | None:
    if explicit is not None:
        if explicit in columns:
            return explicit
        raise BadInput(
            f"{path} has no {what} column '{explicit}'", hint=f"columns are: {', '.join(columns)}"
        )
    lowered = {c.lower().strip(): c for c in columns}
    for name in names:
        if name in lowered:
            return lowered[name]
    if required:
        raise BadInput(
            f"{path} has no {what} column",
            hint=f"columns are: {', '.join(columns)}; name one with --{what}-col",
        )
    return None


def _rows_to_dataset(
    path: Path,
    columns: list[str],
    rows: Sequence[Mapping[str, object]],
    text_col: str | None,
    text2_col: str | None,
    label_col: str | None,
    score_col: str | None,
) -> Dataset:
    t1 = _pick(columns, text_col, TEXT_NAMES, "text", path, required=True)
    t2 = _pick(columns, text2_col, TEXT2_NAMES, "text2", path, required=False)
    lab = _pick(columns, label_col, LABEL_NAMES, "label", path, required=False)
    sc = _pick(columns, score_col, SCORE_NAMES, "score", path, required=False)
    texts, texts2, labels, scores = [], [], [], []
    for n, row in enumerate(rows, 1):
        value = row.get(t1)  # type: ignore[arg-type]
        if value is None or str(value).strip() == "":
            raise BadInput(
                f"{path}: row {n} has an empty '{t1}'", hint="remove empty rows or fix the column"
            )
        texts.append(str(value).strip())
        if t2:
            texts2.append(str(row.get(t2) or "").strip())
        if lab:
            label = row.get(lab)
            if label is None or str(label).strip() == "":
                raise BadInput(f"{path}: row {n} has no '{lab}'")
            labels.append(
                str(
                    int(label) if isinstance(label, float) and label.is_integer() else label
                ).strip()
            )
        if sc:
            score = _float(str(row.get(sc)))
            if score is None:
                raise BadInput(f"{path}: row {n} has a non-numeric '{sc}': {row.get(sc)!r}")
            scores.append(score)
    return Dataset(
        texts=tuple(texts),
        texts2=tuple(texts2) if t2 else None,
        scores=tuple(scores) if sc else None,
        labels=tuple(labels) if lab else None,
    )


class _DuplicateKey(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


def _read_jsonl(
    path: Path,
    text: str,
    text_col: str | None,
    text2_col: str | None,
    label_col: str | None,
    score_col: str | None,
) -> Dataset:
    rows: list[dict[str, object]] = []
    stripped = text.strip()
    if stripped.startswith("["):  # a JSON array of objects is accepted too
        try:
            data = json.loads(stripped, object_pairs_hook=_no_duplicate_keys)
        except _DuplicateKey as e:
            raise BadInput(
                f"{path}: an object has the key '{e.args[0]}' twice",
                hint="give every field its own name",
            ) from e
        except json.JSONDecodeError as e:
            raise BadInput(f"{path}: invalid JSON: {e}") from e
        rows = [r for r in data if isinstance(r, dict)]
    else:
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line, object_pairs_hook=_no_duplicate_keys)
            except _DuplicateKey as e:
                raise BadInput(
                    f"{path}:{n}: the object has the key '{e.args[0]}' twice",
                    hint="give every field its own name",
                ) from e
            except json.JSONDecodeError as e:
                raise BadInput(
                    f"{path}:{n}: invalid JSON line: {e.msg}",
                    hint="JSONL wants one JSON object per line",
                ) from e
            if not isinstance(obj, dict):
                raise BadInput(f"{path}:{n}: expected a JSON object, got {type(obj).__name__}")
            rows.append(obj)
    columns = sorted({k for r in rows for k in r})
    if not rows:
        return Dataset(texts=())
    return _rows_to_dataset(path, columns, rows, text_col, text2_col, label_col, score_col)


def _refuse_duplicate_columns(path: Path, columns: Sequence[str]) -> None:
    """Two columns of one name (case aside): which one the text or label is would be a guess
    (a dict keeps the last, so a label copied into a second ``text`` scores 100%)."""
    seen: dict[str, str] = {}
    for c in columns:
        key = c.lower()
        if key in seen and c:
            raise BadInput(
                f"{path}: the header names the column '{c}' twice"
                + (f" (as '{seen[key]}' and '{c}')" if seen[key] != c else ""),
                hint="give every column its own name",
            )
        seen[key] = c


def _read_delimited(
    path: Path,
    text: str,
    delimiter: str,
    text_col: str | None,
    text2_col: str | None,
    label_col: str | None,
    score_col: str | None,
) -> Dataset:
    explicit = [c for c in (text_col, text2_col, label_col, score_col) if c is not None]
    by_index = bool(explicit) and all(c.isdigit() for c in explicit)
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        table = [r for r in reader if any(cell.strip() for cell in r)]
    except csv.Error as e:
        raise BadInput(
            f"{path}: cannot parse as {'TSV' if delimiter == chr(9) else 'CSV'}: {e}"
        ) from e
    if not table:
        return Dataset(texts=())
    if by_index:
        width = max(len(r) for r in table)
        columns = [str(i) for i in range(width)]
        rows = [{str(i): v for i, v in enumerate(r)} for r in table]
    else:
        columns = [c.strip() for c in table[0]]
        _refuse_duplicate_columns(path, columns)
        rows = [dict(zip(columns, r, strict=False)) for r in table[1:]]
    return _rows_to_dataset(path, columns, rows, text_col, text2_col, label_col, score_col)
