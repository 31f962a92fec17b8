"""``file_sentences``: prose sentences of a user's text file (``optimize --extra-text``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from frugalml.data import file_sentences, stdlib_sentences


def test_sentences_of_a_file_split_filtered_and_deduplicated(tmp_path: Path) -> None:
    a, b, c = stdlib_sentences(3, seed=2)
    path = tmp_path / "t.txt"
    path.write_text(
        f" = Heading of a section = \n\n{a} {b}\n{a}\nshort.\n{c}\nx=1;y=[2,3];z={{}}\n",
        encoding="utf-8",
    )
    got = file_sentences(path)
    assert got == [a, b, c]  # one line held two sentences; the repeat, heading, short and code went
    assert sorted(file_sentences(path, 2, seed=1)) != sorted(file_sentences(path, 3))
    assert file_sentences(path, 2, seed=1) == file_sentences(path, 2, seed=1)


def test_a_file_without_prose_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "code.txt"
    path.write_text("def f(x):\n    return x**2\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no prose sentences"):
        file_sentences(path)


def test_wikitext2_gives_thousands_of_sentences(shared_data: Path) -> None:
    got = file_sentences(shared_data / "wikitext-2" / "valid.txt")
    assert len(got) > 3000 and len(set(got)) == len(got)
    assert not any(s.startswith("=") for s in got)
    assert all(30 <= len(s) <= 300 for s in got)
