"""Getting data and a model ready to train: label checks, model resolution, tokenization.

Everything here is shared by the trainer and the separate evaluator process, so both see the
same label ids and the same token ids.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from frugalml.data import Dataset
from frugalml.errors import BadInput


def resolve_model(spec: str | os.PathLike[str]) -> Path:
    """A local Hugging Face model folder for ``spec``: an alias (``minilm``) or a folder path.

    Resolved by ``frugalml.models`` (the one alias table, the same errors as ``eval``);
    nothing is downloaded: a hub name that is not a local folder is an error. The config and
    weights are checked when the trainer loads them (``models.runtimes.torch``).
    """
    from frugalml.models import resolve_path

    path = resolve_path(os.fspath(spec))
    if not (path / "config.json").is_file():
        raise BadInput(
            f"{path} is not a Hugging Face model folder (no config.json)",
            hint="point at the folder that holds config.json and the weights",
        )
    return path


@dataclass(frozen=True)
class Labels:
    """The classification head's labels: ``names[i]`` is class id ``i``."""

    names: tuple[str, ...]

    @property
    def label2id(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.names)}

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.names))

    def ids(self, labels: Sequence[str]) -> list[int]:
        lookup = self.label2id
        return [lookup[x] for x in labels]


def check_data(train: Dataset, dev: Dataset, *, head: Sequence[str] | None = None) -> Labels:
    """Validate classification data; the head's labels (sorted train labels, or ``head``).

    Raises ``BadInput`` for: no label column, a single class, dev labels the head lacks.
    """
    for what, ds in (("training", train), ("evaluation", dev)):
        if len(ds) == 0:
            raise BadInput(
                f"the {what} data {ds.source or ''} is empty".replace("  ", " "),
                hint="give a file with rows (cleaning may have removed them all)",
            )
        if ds.labels is None:
            raise BadInput(
                f"the {what} data {ds.source or ''} has no label column",
                hint="classification needs labels: name the column with --label-col "
                "(CSV/TSV/JSONL) or use 'label text' lines",
            )
    assert train.labels is not None and dev.labels is not None  # checked just above
    names = tuple(head) if head is not None else tuple(train.label_names())
    if len(set(train.labels)) < 2:
        only = train.labels[0]
        raise BadInput(
            f"the training data has a single class ('{only}')",
            hint="a classifier needs at least two classes; check the label column",
        )
    missing = sorted(set(train.labels) - set(names))
    if missing:
        raise BadInput(
            f"training labels not in the head: {', '.join(missing[:10])}",
            hint=f"the head has {', '.join(names)}",
        )
    unknown = sorted(set(dev.labels) - set(names))
    if unknown:
        shown = ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else "")
        raise BadInput(
            f"evaluation labels not in the head: {shown}",
            hint=f"the head has {', '.join(names)} (from the training data); "
            "use matching files or add those classes to the training data",
        )
    return Labels(names)


@dataclass(frozen=True)
class Encoded:
    """Tokenized rows: token ids per row (no padding) and class ids."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None
    labels: list[int]

    def __len__(self) -> int:
        return len(self.input_ids)

    def lengths(self) -> list[int]:
        return [len(x) for x in self.input_ids]


def encode(tokenizer: Any, data: Dataset, labels: Labels, max_length: int) -> Encoded:
    """Tokenize ``data`` (pairs when it has ``texts2``), truncated to ``max_length`` tokens."""
    args: list[Any] = [list(data.texts)]
    if data.texts2 is not None:
        args.append(list(data.texts2))
    enc = tokenizer(*args, truncation=True, max_length=max_length)
    tti = enc.get("token_type_ids")
    return Encoded(
        input_ids=[list(x) for x in enc["input_ids"]],
        token_type_ids=[list(x) for x in tti] if tti is not None else None,
        labels=labels.ids(data.labels or ()),
    )


def collate(
    enc: Encoded, rows: Sequence[int], pad_id: int, pad_to: int | None = None
) -> dict[str, Any]:
    """A padded batch (``input_ids``, ``attention_mask``, ``token_type_ids``, ``labels``).

    Padded to the longest row, or to ``pad_to`` tokens (fixed shapes, for ``torch.compile``).
    """
    import torch

    width = pad_to or max(len(enc.input_ids[i]) for i in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    types = torch.zeros((len(rows), width), dtype=torch.long) if enc.token_type_ids else None
    for j, i in enumerate(rows):
        row = enc.input_ids[i]
        ids[j, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[j, : len(row)] = 1
        if types is not None and enc.token_type_ids is not None:
            types[j, : len(row)] = torch.tensor(enc.token_type_ids[i], dtype=torch.long)
    batch: dict[str, Any] = {
        "input_ids": ids,
        "attention_mask": mask,
        "labels": torch.tensor([enc.labels[i] for i in rows]),
    }
    if types is not None:
        batch["token_type_ids"] = types
    return batch


def write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    """``frugal.json`` in the one manifest schema (``frugalml.passes.persist``)."""
    from frugalml.passes.persist import write_manifest as write

    write(out, manifest)
