"""load_data: the shared datasets' formats without flags, CSV/TSV/JSONL by column, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from frugalml.data import load_data, stdlib_sentences
from frugalml.data.formats import EncodingFallback
from frugalml.errors import BadInput


def test_stsb_dev_ragged_rows(shared_data: Path) -> None:
    ds = load_data(shared_data / "sts-b" / "sts-dev.csv")
    assert ds.format == "stsb" and len(ds) == 1500 and ds.is_pairs
    assert ds.scores is not None and min(ds.scores) >= 0 and max(ds.scores) <= 5
    raw = (shared_data / "sts-b" / "sts-dev.csv").read_text().splitlines()
    ragged = [i for i, ln in enumerate(raw) if len(ln.split("\t")) > 7]
    assert ragged, "the dev file has rows with trailing fields"
    i = ragged[0]
    assert ds.texts2 is not None and ds.texts2[i] == raw[i].split("\t")[6].strip()


def test_sst2_and_trec_label_text(shared_data: Path) -> None:
    sst = load_data(shared_data / "sst2" / "stsa.binary.dev")
    assert sst.format == "label-text" and len(sst) == 872 and sst.label_names() == ["0", "1"]
    with pytest.warns(EncodingFallback):  # TREC is ISO-8859-1
        trec = load_data(shared_data / "trec" / "TREC.train.all")
    assert trec.encoding == "iso-8859-1" and len(trec) == 5452
    assert len(trec.label_names()) == 6


def test_trec_coarse_labels(tmp_path: Path) -> None:
    f = tmp_path / "trec.txt"
    f.write_bytes(
        "DESC:manner How did serfdom develop ?\nENTY:cremat What films featured "
        "Popeye Doyle ?\nHUM:ind Who was Caf\xe9 Society 's host ?\n".encode("latin-1")
    )
    ds = load_data(f, encoding="iso-8859-1")
    assert ds.labels == ("DESC", "ENTY", "HUM") and "Café" in ds.texts[2]
    assert load_data(f, fine_labels=True, encoding="iso-8859-1").labels == (
        "DESC:manner",
        "ENTY:cremat",
        "HUM:ind",
    )


def test_csv_tsv_jsonl_with_and_without_options(tmp_path: Path) -> None:
    csv_file = tmp_path / "d.csv"
    csv_file.write_text('sentence,label\n"hello, world",pos\nbye,neg\n')
    ds = load_data(csv_file)
    assert ds.texts == ("hello, world", "bye") and ds.labels == ("pos", "neg")
    tsv = tmp_path / "d.tsv"
    tsv.write_text("a\tb\tsim\nx y\tx z\t0.5\np q\tr s\t1.0\n")
    pairs = load_data(tsv, text_col="a", text2_col="b", score_col="sim")
    assert pairs.texts2 == ("x z", "r s") and pairs.scores == (0.5, 1.0)
    jl = tmp_path / "d.jsonl"
    jl.write_text(
        "\n".join(
            json.dumps({"text": t, "label": i % 2}) for i, t in enumerate(["one", "two", "three"])
        )
    )
    ds = load_data(jl)
    assert ds.labels == ("0", "1", "0") and ds.format == "jsonl"
    headerless = tmp_path / "h.csv"
    headerless.write_text("1,great film\n0,awful\n")
    ds = load_data(headerless, text_col="1", label_col="0")
    assert ds.texts == ("great film", "awful") and ds.labels == ("1", "0")


@pytest.mark.parametrize(
    "content, kwargs, message",
    [
        (b"", {}, "no data rows"),
        (b"text,label\n", {}, "no data rows"),
        (b"body,label\nhi,1\n", {}, "has no text column"),
        (b"text,label\nhi,1\n", {"label_col": "y"}, "no label column 'y'"),
        ("text\nhi\n".encode("utf-16"), {}, "UTF-16"),
        (b'{"text": 1}\nnot json\n', {"format": "jsonl"}, "invalid JSON"),
        (b"text,score\nhi,high\n", {}, "non-numeric"),
    ],
)
def test_bad_files_say_what_to_fix(
    tmp_path: Path,
    content: bytes,
    kwargs: dict,  # type: ignore[type-arg]
    message: str,
) -> None:
    f = tmp_path / "bad.csv"
    f.write_bytes(content)
    with pytest.raises(BadInput, match=message):
        load_data(f, **kwargs)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="not found"):
        load_data(tmp_path / "nope.csv")
    with pytest.raises(BadInput, match="folder"):
        load_data(tmp_path)


def test_split_is_stratified_seeded_and_disjoint(shared_data: Path) -> None:
    ds = load_data(shared_data / "sst2" / "stsa.binary.dev")
    a, b = ds.split(0.25, seed=3)
    a2, b2 = ds.split(0.25, seed=3)
    assert a.texts == a2.texts and b.texts == b2.texts
    assert len(a) + len(b) == len(ds) and len(b) == pytest.approx(len(ds) * 0.25, abs=2)
    assert abs(b.labels.count("1") / len(b) - ds.labels.count("1") / len(ds)) < 0.02  # type: ignore[union-attr]


def test_stdlib_sentences_are_real_distinct_prose() -> None:
    sents = stdlib_sentences()
    assert len(sents) > 1000 and len(set(sents)) == len(sents)
    assert all(30 <= len(s) <= 300 for s in sents)
    assert stdlib_sentences(50, seed=1) == stdlib_sentences(50, seed=1)
    assert stdlib_sentences(50, seed=1) != stdlib_sentences(50, seed=2)


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("dup.csv", "text,text,label\na film,1,1\nbad film,0,0\n", "'text' twice"),
        ("dup.tsv", "Text\ttext\tlabel\na film\tx\t1\nbad\ty\t0\n", "as 'Text' and 'text'"),
        ("dup.jsonl", '{"text": "a film", "text": "1", "label": 1}\n', "key 'text' twice"),
        ("dup.json", '[{"text": "a film", "label": 1, "label": 0}]', "key 'label' twice"),
    ],
)
def test_duplicate_column_names_are_refused(
    tmp_path: Path, name: str, content: str, needle: str
) -> None:
    f = tmp_path / name
    f.write_text(content)
    with pytest.raises(BadInput, match=needle):
        load_data(f)


def test_stsb_with_a_bad_score_names_the_row_and_cell(tmp_path: Path, shared_data: Path) -> None:
    lines = (shared_data / "sts-b" / "sts-dev.csv").read_text().splitlines()[:40]
    cols = lines[6].split("\t")
    lines[6] = "\t".join([*cols[:4], "NaN", *cols[5:]])
    f = tmp_path / "sts.tsv"
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(BadInput, match=r"row 7, score cell \(field 5\) is 'NaN'"):
        load_data(f)
    cols[4] = "7.5"  # out of STS-B's 0-5
    lines[6] = "\t".join(cols)
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(BadInput, match=r"row 7.*'7\.5', not a number in 0-5"):
        load_data(f)


def test_non_utf8_fallback_warns_and_says_which_encoding(tmp_path: Path) -> None:
    f = tmp_path / "sjis.txt"
    f.write_bytes("1 とても良い映画\n0 ひどい映画\n".encode("shift_jis"))
    with pytest.warns(EncodingFallback, match="not valid UTF-8.*--encoding"):
        ds = load_data(f)
    assert ds.encoding == "iso-8859-1"
    right = load_data(f, encoding="shift_jis")
    assert right.encoding == "shift_jis" and right.texts[0] == "とても良い映画"


def test_errors_about_the_path_name_the_option(tmp_path: Path) -> None:
    with pytest.raises(BadInput) as e:
        load_data(tmp_path / "dev.tsv", option="--eval")
    assert e.value.hint == "check the path given to --eval"
    with pytest.raises(BadInput) as e:
        load_data(tmp_path, option="DATA")
    assert e.value.hint == "check the path given as DATA"
    with pytest.raises(BadInput) as e:
        load_data(tmp_path / "x.csv")
    assert "--data" not in str(e.value)
