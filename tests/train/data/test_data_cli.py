"""``frugal data audit | clean | select`` through the real command line, bad input included."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from planted_text import Planted, write_label_text

from frugalml.data import load_data


@pytest.fixture
def planted_file(tmp_path: Path, planted: Planted) -> Path:
    path = tmp_path / "planted.txt"
    write_label_text(path, planted.ds)
    return path


def _ok(proc) -> dict:  # type: ignore[no-untyped-def]
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def _fails(proc, *needles: str) -> None:  # type: ignore[no-untyped-def]
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "frugal: error:" in proc.stderr
    for needle in needles:
        assert needle in proc.stderr


def test_audit_json_counts_and_ledger_run(cli, planted_file: Path, planted: Planted) -> None:  # type: ignore[no-untyped-def]
    doc = _ok(cli("data", "audit", str(planted_file), "--embedder", "tfidf", "--json"))
    c = doc["counts"]
    assert c["rows"] == len(planted.ds)
    removed = {r["index"]: r for r in doc["removals"]}
    assert all(removed[i]["reason"] == "exact-duplicate" for i in planted.exact)
    assert sum(removed.get(i, {}).get("reason") == "near-duplicate" for i in planted.near) >= 9
    assert c["removed"] == len(removed) and c["kept"] == c["rows"] - c["removed"]
    assert doc["class_balance"] == dict(sorted(Counter(planted.ds.labels).items()))
    runs = _ok(cli("runs", "--kind", "data", "--json"))
    assert [r["id"] for r in runs] == [doc["run"]["id"]]
    assert runs[0]["status"] == "finished" and runs[0]["cost_usd"] > 0
    assert runs[0]["quality"]["removed"] == c["removed"]
    # the human report says what clean would remove
    text = cli("data", "audit", str(planted_file), "--embedder", "tfidf", "--no-label-issues")
    assert text.returncode == 0 and "clean would remove" in text.stdout


def test_clean_writes_kept_rows_and_a_report(cli, planted_file: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    before = planted_file.read_bytes()
    out = tmp_path / "clean.txt"
    doc = _ok(
        cli("data", "clean", str(planted_file), "--out", str(out), "--embedder", "tfidf", "--json")
    )
    report = json.loads(Path(doc["report"]).read_text())
    assert report["counts"] == doc["counts"]
    src, cleaned = load_data(planted_file), load_data(out)
    gone = {r["index"] for r in report["removals"]}
    kept = [i for i in range(len(src)) if i not in gone]
    assert cleaned.texts == tuple(src.texts[i] for i in kept)  # nothing lost silently
    assert cleaned.labels == tuple(src.labels[i] for i in kept)  # type: ignore[index]
    assert len(cleaned) + len(gone) == len(src)
    assert planted_file.read_bytes() == before


def test_select_writes_a_balanced_subset(cli, planted_file: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "sub.txt"
    doc = _ok(
        cli(
            "data",
            "select",
            str(planted_file),
            "--fraction",
            "0.5",
            "--strategy",
            "uncertainty",
            "--embedder",
            "tfidf",
            "--out",
            str(out),
            "--json",
        )
    )
    sub = load_data(out)
    assert len(sub) == doc["selected"] == round(doc["rows"] * 0.5)
    src = load_data(planted_file)
    assert sub.texts == tuple(src.texts[i] for i in doc["indices"])
    before, after = doc["class_balance_before"], doc["class_balance_after"]
    for label, n in before.items():
        assert abs(after[label] - n / 2) <= 1
    assert any(h["reason"] == "label-issue" for h in doc["held_back"])
    assert (out.parent / "sub.txt.report.json").exists()


def test_missing_label_column(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "nolabel.csv"
    data.write_text("text\nthe first row\nthe second row\n")
    _fails(cli("data", "audit", str(data), "--task", "classification"), "no label column")
    _fails(
        cli(
            "data",
            "select",
            str(data),
            "--fraction",
            "0.5",
            "--strategy",
            "uncertainty",
            "--out",
            str(tmp_path / "o.csv"),
        ),
        "no label column",
    )


def test_single_class(cli, planted: Planted, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "one.txt"
    data.write_text("".join(f"pos {t}\n" for t in planted.ds.texts[:60]))
    proc = cli("data", "audit", str(data), "--embedder", "tfidf")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    assert "skipped" in proc.stderr and "same label" in proc.stderr
    _fails(
        cli(
            "data",
            "select",
            str(data),
            "--fraction",
            "0.5",
            "--strategy",
            "uncertainty",
            "--embedder",
            "tfidf",
            "--out",
            str(tmp_path / "o.txt"),
        ),
        "uncertainty selection is impossible",
    )


def test_empty_after_cleaning_writes_nothing(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "conflict.txt"
    data.write_text("1 a film about a dog\n0 A film about a  dog\n")
    before = data.read_bytes()
    out = tmp_path / "clean.txt"
    _fails(
        cli("data", "clean", str(data), "--out", str(out), "--embedder", "tfidf"),
        "empty after cleaning",
    )
    assert not out.exists() and not (tmp_path / "clean.txt.report.json").exists()
    assert data.read_bytes() == before
    runs = _ok(cli("runs", "--kind", "data", "--json"))
    assert runs[0]["status"] == "failed"  # the compute spent is still in the ledger


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--fraction", "0.5", "--strategy", "loss"], "unknown selection strategy"),
        (["--fraction", "0"], "--fraction must be in (0, 1]"),
        (["--fraction", "1.5"], "--fraction must be in (0, 1]"),
        (["--fraction", "0.5", "--embedder", "bert"], "unknown embedder"),
    ],
)
def test_bad_select_options(
    cli,
    planted_file: Path,
    tmp_path: Path,
    args: list[str],  # type: ignore[no-untyped-def]
    needle: str,
) -> None:
    _fails(
        cli("data", "select", str(planted_file), "--out", str(tmp_path / "o.txt"), *args), needle
    )


def test_out_is_never_the_input_and_missing_files(cli, planted_file: Path) -> None:  # type: ignore[no-untyped-def]
    before = planted_file.read_bytes()
    _fails(
        cli("data", "clean", str(planted_file), "--out", str(planted_file)),
        "never writes over its input",
    )
    assert planted_file.read_bytes() == before
    _fails(cli("data", "audit", str(planted_file.with_name("nope.txt"))), "not found")


def test_help_explains_each_command(cli) -> None:  # type: ignore[no-untyped-def]
    for cmd in ("audit", "clean", "select"):
        proc = cli("data", cmd, "--help")
        assert proc.returncode == 0 and "--json" in proc.stdout and "--ledger" in proc.stdout


def test_cli_import_stays_lean() -> None:
    import subprocess
    import sys

    code = (
        "import sys, frugalml.cli, frugalml.cli.data_cmds; print(sorted(m for m in "
        "('torch', 'sklearn', 'cleanlab', 'datasketch', 'transformers', 'sqlalchemy') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # heavy libraries (and the ledger's SQLAlchemy) load only when a command runs; numpy, a
    # core dependency, does load: --task's help lists the task registry (frugalml.tasks)
    assert out.stdout.strip() == "[]"


def test_duplicate_columns_exit_2(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "dup.csv"
    data.write_text("text,text,label\na fine film,1,1\na bad film,0,0\n")
    _fails(cli("data", "audit", str(data), "--embedder", "tfidf"), "'text' twice")


def test_path_errors_name_the_data_argument(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proc = cli("data", "audit", str(tmp_path / "nope.txt"))
    _fails(proc, "not found", "check the path given as DATA")
    assert "--data" not in proc.stderr


def test_non_utf8_data_warns_and_json_says_the_encoding(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "sjis.txt"
    rows = [f"{i % 2} 映画 番号 {i} は{'良い' if i % 2 else '悪い'}です" for i in range(40)]
    data.write_bytes(("\n".join(rows) + "\n").encode("shift_jis"))
    args = ("data", "audit", str(data), "--embedder", "tfidf", "--no-label-issues", "--json")
    proc = cli(*args)
    doc = _ok(proc)
    assert doc["encoding"] == "iso-8859-1"
    assert "frugal: warning:" in proc.stderr and "not valid UTF-8" in proc.stderr
    proc = cli(*args, "--encoding", "shift_jis")
    assert _ok(proc)["encoding"] == "shift_jis" and "warning" not in proc.stderr
