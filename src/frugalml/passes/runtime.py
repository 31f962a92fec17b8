"""Runtime settings: intra-op threads, batch size, length-bucketed batching.

No weights change. ``length_sort`` sorts texts by length before batching so each batch pads to
nearly the same length (less wasted work on padding); results return in input order. Larger
batches amortize per-call overhead but raise per-batch latency; the search measures both.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from frugalml.errors import CandidateFailed
from frugalml.passes.registry import PassContext, register

if TYPE_CHECKING:
    from frugalml.models import Model


@dataclass(frozen=True)
class RuntimeSettings:
    """Set intra-op threads, batch size and length-sorted batching."""

    threads: int | None = None  # None: every usable core
    batch_size: int = 32
    length_sort: bool = True


@register(RuntimeSettings, stage=90, engines=None)  # any runtime: no weights change
def runtime_settings(model: Model, cfg: RuntimeSettings, ctx: PassContext) -> Model:
    if cfg.batch_size < 1 or (cfg.threads is not None and cfg.threads < 1):
        raise CandidateFailed("batch_size and threads must be at least 1")
    runtime = dataclasses.replace(
        model.runtime, threads=cfg.threads, batch_size=cfg.batch_size, length_sort=cfg.length_sort
    )
    return model.evolve(runtime=runtime)
