"""frugalml.outputs: frugal writes only where it may, and deletes only what it wrote."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from frugalml.errors import BadInput
from frugalml.ledger import Ledger
from frugalml.outputs import MANIFEST, OutputGuard, remove_written


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.db"
    with Ledger(str(path)) as book:
        book.create_schema()  # opening alone creates nothing
    return path


def test_a_file_output_may_not_be_the_ledger_by_any_name(tmp_path: Path, ledger: Path) -> None:
    (tmp_path / "sub").mkdir()
    link = tmp_path / "link.db"
    link.symlink_to(ledger)
    hard = tmp_path / "hard.db"
    os.link(ledger, hard)
    before = ledger.read_bytes()
    for name in (ledger, tmp_path / "sub" / ".." / "ledger.db", link, hard):
        guard = OutputGuard(ledger=f"sqlite:///{ledger}", overwrite=True)
        with pytest.raises(BadInput, match="the ledger"):
            guard.claim_file(name)
    assert ledger.read_bytes() == before


def test_an_output_may_not_be_an_input_even_with_overwrite(tmp_path: Path) -> None:
    data = tmp_path / "train.tsv"
    data.write_text("label\ttext\n1\ta\n")
    hard = tmp_path / "copy.tsv"
    os.link(data, hard)
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    guard = OutputGuard(ledger=tmp_path / "l.db", inputs=[data, model, "minilm"], overwrite=True)
    with pytest.raises(BadInput, match="input"):
        guard.claim_file(hard)
    with pytest.raises(BadInput, match="input"):
        guard.claim_dir(tmp_path / "x" / ".." / "model")
    # a folder whose named outputs would hold the input is refused before any work
    with pytest.raises(BadInput, match="model is this command's input"):
        guard.claim_dir(tmp_path, writes=["model"])


def test_existing_file_frugal_did_not_write_needs_overwrite(tmp_path: Path) -> None:
    mine = tmp_path / "report.html"
    mine.write_text("my notes")
    with pytest.raises(BadInput, match="frugal did not write it"):
        OutputGuard(ledger=tmp_path / "l.db").claim_file(mine)
    assert mine.read_text() == "my notes"
    # the file frugal wrote and listed may be replaced on the next run, without --overwrite
    new = tmp_path / "new.html"
    guard = OutputGuard(ledger=tmp_path / "l.db")
    guard.claim_file(new)
    new.write_text("report 1")
    guard.mark_written(new)
    assert "new.html" in json.loads((tmp_path / MANIFEST).read_text())["written"]
    OutputGuard(ledger=tmp_path / "l.db").claim_file(new)
    # ...but not once the user has replaced it with their own
    new.write_text("the user's own, longer text")
    with pytest.raises(BadInput, match="frugal did not write it"):
        OutputGuard(ledger=tmp_path / "l.db").claim_file(new)
    OutputGuard(ledger=tmp_path / "l.db", overwrite=True).claim_file(new)


def test_two_outputs_of_one_command_may_not_share_a_path(tmp_path: Path) -> None:
    guard = OutputGuard(ledger=tmp_path / "l.db")
    guard.claim_file(tmp_path / "clean.tsv")
    with pytest.raises(BadInput, match="same path as --out"):
        guard.claim_file(tmp_path / "." / "clean.tsv", option="--report")


def test_folder_output_refuses_files_and_foreign_folders(tmp_path: Path) -> None:
    file = tmp_path / "afile"
    file.write_text("x")
    guard = OutputGuard(ledger=tmp_path / "l.db")
    with pytest.raises(BadInput, match="is a file, not a folder"):
        guard.claim_dir(file)
    with pytest.raises(BadInput, match="cannot create the folder"):
        guard.claim_dir(file / "sub")
    user = tmp_path / "user"
    (user / "best").mkdir(parents=True)
    (user / "best" / "keep.txt").write_text("mine")
    with pytest.raises(BadInput, match="did not write"):
        guard.claim_dir(user)
    assert not (user / MANIFEST).exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert guard.claim_dir(empty) == empty


def test_remove_deletes_only_what_frugal_wrote(tmp_path: Path) -> None:
    out = tmp_path / "out"
    guard = OutputGuard(ledger=tmp_path / "l.db")
    guard.claim_dir(out, writes=["best", "candidates.json"])
    (out / "best").mkdir()
    (out / "best" / "model.onnx").write_bytes(b"onnx")
    (out / "candidates.json").write_text("[]")
    guard.mark_written(out)
    listed = json.loads((out / MANIFEST).read_text())["written"]
    assert set(listed) == {"best", "best/model.onnx", "candidates.json"}
    # a second run: the folder is frugal's, so it may be claimed and best/ replaced
    again = OutputGuard(ledger=tmp_path / "l.db")
    again.claim_dir(out, writes=["best", "candidates.json"])
    again.remove(out / "best")
    assert not (out / "best").exists()
    # a user's file dropped into frugal's folder stops the removal, unless --overwrite
    (out / "best").mkdir()
    (out / "best" / "model.onnx").write_bytes(b"onnx")
    again.mark_written(out)
    (out / "best" / "notes.txt").write_text("mine")
    with pytest.raises(BadInput, match="did not write"):
        OutputGuard(ledger=tmp_path / "l.db").remove(out / "best")
    remove_written(out / "best")
    assert (out / "best" / "notes.txt").read_text() == "mine"
    assert not (out / "best" / "model.onnx").exists()


def test_remove_refuses_a_folder_holding_an_input(tmp_path: Path) -> None:
    out = tmp_path / "out"
    guard = OutputGuard(ledger=tmp_path / "l.db")
    guard.claim_dir(out)
    (out / "best").mkdir()
    (out / "best" / "model.onnx").write_bytes(b"onnx")
    guard.mark_written(out)
    reader = OutputGuard(ledger=tmp_path / "l.db", inputs=[out / "best"], overwrite=True)
    with pytest.raises(BadInput, match="input"):
        reader.remove(out / "best")
    assert (out / "best" / "model.onnx").exists()


def test_an_interrupted_write_leaves_a_folder_frugal_may_reuse(tmp_path: Path) -> None:
    out = tmp_path / "out"
    OutputGuard(ledger=tmp_path / "l.db").claim_dir(out)
    (out / ".checkpoints").mkdir()
    (out / ".checkpoints" / "step-1.safetensors").write_bytes(b"w")
    (out / "config.json").write_text("{}")
    # killed before mark_written: the folder is still frugal's
    OutputGuard(ledger=tmp_path / "l.db").claim_dir(out)


def test_overwrite_keeps_foreign_files_out_of_the_manifest(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "config.json").write_text("user config")
    guard = OutputGuard(ledger=tmp_path / "l.db", overwrite=True)
    guard.claim_dir(out)
    (out / "config.json").write_text('{"written": "by frugal"}')
    (out / "model.safetensors").write_bytes(b"w")
    guard.mark_written(out)
    listed = json.loads((out / MANIFEST).read_text())["written"]
    assert set(listed) == {"config.json", "model.safetensors"}
    remove_written(out)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_a_second_run_may_write_anew_under_the_names_it_declares(tmp_path: Path) -> None:
    out = tmp_path / "out"
    for run in range(2):
        guard = OutputGuard(ledger=tmp_path / "l.db")
        guard.claim_dir(out, writes=[".work"])
        (out / ".work" / "cands" / f"c{run}").mkdir(parents=True)
        (out / ".work" / "cands" / f"c{run}" / "model.onnx").write_bytes(b"x" * run)
        guard.remove(out / ".work" / "cands")
        guard.mark_written(out)
        assert not (out / ".work" / "cands").exists()
    assert set(json.loads((out / MANIFEST).read_text())["written"]) == {".work"}


def test_a_ledger_inside_the_output_folder_is_kept_and_never_listed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    for _ in range(2):
        guard = OutputGuard(ledger=out / "ledger.db")
        guard.claim_dir(out)
        with Ledger(str(out / "ledger.db")) as book:
            book.create_schema()
        (out / "model.safetensors").write_bytes(b"w")
        guard.mark_written(out)
    assert set(json.loads((out / MANIFEST).read_text())["written"]) == {"model.safetensors"}
    with pytest.raises(BadInput, match="the ledger"):
        OutputGuard(ledger=out / "ledger.db", overwrite=True).remove(out)
    remove_written(out)
    assert (out / "ledger.db").exists() and not (out / "model.safetensors").exists()


def test_the_ledger_path_is_refused_before_the_ledger_exists(tmp_path: Path) -> None:
    """`data clean --out L.db --ledger L.db` with a new L.db: the run would create the ledger
    and the write would then replace it."""
    guard = OutputGuard(ledger=f"sqlite:///{tmp_path / 'new.db'}")
    with pytest.raises(BadInput, match="the ledger"):
        guard.claim_file(tmp_path / "new.db")


def test_an_input_frugal_wrote_in_the_folder_is_not_in_the_way(tmp_path: Path) -> None:
    """`frugal demo` writes its data into OUT, then optimizes on it into OUT."""
    out = tmp_path / "demo"
    OutputGuard(ledger=tmp_path / "l.db").claim_dir(out, writes=["demo-data.jsonl"])
    (out / "demo-data.jsonl").write_text('{"text": "a"}\n')
    guard = OutputGuard(ledger=tmp_path / "l.db", inputs=[out / "demo-data.jsonl"])
    guard.claim_dir(out, writes=["best"])
    guard.mark_written(out)
    assert "demo-data.jsonl" in json.loads((out / MANIFEST).read_text())["written"]
    user = tmp_path / "user"
    user.mkdir()
    (user / "data.tsv").write_text("x\n")
    with pytest.raises(BadInput, match=r"did not write \(data.tsv\)"):
        OutputGuard(ledger=tmp_path / "l.db", inputs=[user / "data.tsv"]).claim_dir(user)
