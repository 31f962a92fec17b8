"""Write a subset of a data file's rows, in the file's own format.

The kept rows are copied from the input *verbatim* (``label text`` lines, STS-B rows, JSONL
objects, CSV/TSV records under the same header, in the input's encoding), so columns frugal
did not read (TREC's fine labels, extra CSV columns) survive and ``load_data`` reads the output
with the same options as the input. When the input cannot be split back into the rows
``load_data`` saw, the subset is written as JSONL with the schema
``{"text": str, "text2": str?, "label": str?, "score": float?}``.

The file is written to a temporary name next to ``out``, read back with ``load_data`` and
compared row by row with what was meant to be written, then renamed into place; the input
itself is never written.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from frugalml.data import Dataset, load_data
from frugalml.errors import BadInput, FrugalError


def same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def check_out(ds: Dataset, out: Path) -> None:
    """``BadInput`` when ``out`` would overwrite the input or cannot be a file."""
    if same_file(Path(ds.source), out):
        raise BadInput(
            f"--out {out} is the input file; frugal never writes over its input",
            hint="give another path for the output",
        )
    if out.is_dir():
        raise BadInput(f"--out {out} is a folder", hint="give a file path for the output")


def _records(ds: Dataset) -> tuple[str | None, list[Any]] | None:
    """(header, per-row raw records) as ``load_data`` split the file, or None if they don't
    line up with ``ds``'s rows."""
    raw = Path(ds.source).read_bytes()
    text = raw.decode("utf-8-sig" if ds.encoding == "utf-8" else ds.encoding)
    if ds.format in ("label-text", "stsb") or (
        ds.format == "jsonl" and not text.strip().startswith("[")
    ):
        lines = [ln for ln in text.splitlines() if ln.strip()]
        return (None, lines) if len(lines) == len(ds) else None
    if ds.format == "jsonl":
        objs = [o for o in json.loads(text) if isinstance(o, dict)]
        lines = [json.dumps(o, ensure_ascii=False) for o in objs]
        return (None, lines) if len(lines) == len(ds) else None
    if ds.format in ("csv", "tsv"):
        delim = "\t" if ds.format == "tsv" else ","
        table = [
            r for r in csv.reader(io.StringIO(text), delimiter=delim) if any(c.strip() for c in r)
        ]
        buf = io.StringIO()
        writer = csv.writer(buf, delimiter=delim, lineterminator="\n")
        if len(table) == len(ds) + 1:
            writer.writerow(table[0])
            header: str | None = buf.getvalue().rstrip("\n")
            body = table[1:]
        elif len(table) == len(ds):
            header, body = None, table
        else:
            return None
        lines = []
        for row in body:
            buf = io.StringIO()
            csv.writer(buf, delimiter=delim, lineterminator="\n").writerow(row)
            lines.append(buf.getvalue().rstrip("\n"))
        return header, lines
    return None


def _jsonl(ds: Dataset, keep: Sequence[int]) -> str:
    out = []
    for i in keep:
        obj: dict[str, Any] = {"text": ds.texts[i]}
        if ds.texts2 is not None:
            obj["text2"] = ds.texts2[i]
        if ds.labels is not None:
            obj["label"] = ds.labels[i]
        if ds.scores is not None:
            obj["score"] = ds.scores[i]
        out.append(json.dumps(obj, ensure_ascii=False))
    return "\n".join(out) + "\n"


def _same_rows(a: Dataset, b: Dataset) -> bool:
    return (
        a.texts == b.texts
        and a.texts2 == b.texts2
        and a.labels == b.labels
        and a.scores == b.scores
    )


def write_rows(
    ds: Dataset, keep: Sequence[int], out: str | Path, load_options: dict[str, Any] | None = None
) -> str:
    """Write rows ``keep`` (data-row indices, written in the order given) of ``ds`` to ``out``.

    ``load_options`` are the column/encoding options the input was read with. Returns the
    format written (the input's, or ``jsonl``).
    """
    out = Path(out).expanduser()
    check_out(ds, out)
    if not keep:
        raise BadInput("no rows to write", hint="nothing was written")
    opts = {k: v for k, v in (load_options or {}).items() if k != "format"}
    expected = ds.take(keep)
    attempts: list[tuple[str, str, str | None]] = []
    split = _records(ds)
    if split is not None:
        header, lines = split
        body = "\n".join(([header] if header is not None else []) + [lines[i] for i in keep])
        attempts.append((ds.format, body + "\n", ds.encoding))
    attempts.append(("jsonl", _jsonl(ds, keep), "utf-8"))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        for fmt, body, encoding in attempts:
            tmp.write_text(body, encoding=encoding or "utf-8")
            # read back in the encoding written: no fallback warning for an ISO-8859-1 input
            back_opts = {**opts, "encoding": encoding} if fmt == ds.format else {}
            try:
                back = load_data(tmp, format=fmt, **back_opts)  # type: ignore[arg-type]
            except FrugalError:
                continue
            if _same_rows(back, expected):
                os.replace(tmp, out)
                return fmt
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    raise FrugalError(
        f"could not write {out} so that it reads back the same rows",
        hint="please report this with the input file's format",
    )
