"""Subsets are written in the input's own format and read back by load_data unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from frugalml.data import load_data
from frugalml.errors import BadInput
from frugalml.train.data import write_rows

KEEP = [4, 0, 2]  # any order: rows are written in the order given


def _check(src: Path, out: Path, fmt: str, **opts: str) -> None:
    ds = load_data(src, **opts)  # type: ignore[arg-type]
    written = write_rows(ds, KEEP, out, opts)
    assert written == fmt
    back = load_data(out, **opts)  # type: ignore[arg-type]
    want = ds.take(KEEP)
    assert (back.texts, back.texts2, back.labels, back.scores) == (
        want.texts,
        want.texts2,
        want.labels,
        want.scores,
    )


def test_label_text_lines_are_copied_verbatim(tmp_path: Path) -> None:
    src = tmp_path / "in.txt"
    lines = [
        "DESC:manner How did serfdom develop ?",
        "",
        "HUM:ind Who killed Gandhi ?",
        "LOC:city What is the capital of Peru ?",
        "NUM:date When was Bach born ?",
        "ENTY:animal What is the fastest fish ?",
    ]
    src.write_bytes(("\n".join(lines) + "\n").encode("iso-8859-1"))
    out = tmp_path / "out.txt"
    _check(src, out, "label-text")
    data_lines = [ln for ln in lines if ln]
    assert out.read_text().splitlines() == [data_lines[i] for i in KEEP]  # fine labels kept


def test_iso_8859_1_stays_in_its_encoding(tmp_path: Path) -> None:
    src = tmp_path / "in.txt"
    src.write_bytes("".join(f"1 caf\xe9 number {i}\n" for i in range(6)).encode("iso-8859-1"))
    out = tmp_path / "o.txt"
    _check(src, out, "label-text")
    assert load_data(out).encoding == "iso-8859-1"
    assert out.read_bytes().count(b"\xe9") == len(KEEP)


def test_csv_keeps_header_and_columns_frugal_ignores(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text(
        "id,text,label,note\n"
        + "".join(f'{i},"row {i}, with a comma",{i % 2},"extra ""{i}"""\n' for i in range(6))
    )
    out = tmp_path / "o.csv"
    _check(src, out, "csv")
    assert out.read_text().splitlines()[0] == "id,text,label,note"
    assert 'extra ""4""' in out.read_text()


def test_headerless_tsv_with_column_indices(tmp_path: Path) -> None:
    src = tmp_path / "in.tsv"
    src.write_text("".join(f"{i % 3}\tsentence {i}\n" for i in range(6)))
    _check(src, tmp_path / "o.tsv", "tsv", text_col="1", label_col="0")


def test_jsonl_and_json_array(tmp_path: Path) -> None:
    rows = [{"sentence": f"s {i}", "label": i % 2, "meta": {"k": i}} for i in range(6)]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    _check(src, tmp_path / "o.jsonl", "jsonl")
    arr = tmp_path / "in.json"
    arr.write_text(json.dumps(rows))
    _check(arr, tmp_path / "o2.jsonl", "jsonl")
    assert json.loads((tmp_path / "o2.jsonl").read_text().splitlines()[0])["meta"] == {"k": 4}


def test_stsb_pairs(shared_data: Path, tmp_path: Path) -> None:
    _check(shared_data / "sts-b" / "sts-dev.csv", tmp_path / "o.tsv", "stsb")


def test_never_writes_over_the_input(tmp_path: Path) -> None:
    src = tmp_path / "in.txt"
    src.write_text("1 a\n0 b\n")
    before = src.read_bytes()
    ds = load_data(src)
    with pytest.raises(BadInput, match="never writes over its input"):
        write_rows(ds, [0], src)
    with pytest.raises(BadInput, match="no rows"):
        write_rows(ds, [], tmp_path / "o.txt")
    assert src.read_bytes() == before and not (tmp_path / "o.txt").exists()
