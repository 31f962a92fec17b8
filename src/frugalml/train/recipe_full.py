"""Recipe ``full``: every weight of the encoder trains, with the new head."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from frugalml.train.registry import Recipe, register_recipe


@register_recipe
@dataclass(frozen=True)
class Full(Recipe):
    """Train every weight (the most memory: gradients and AdamW state for all of them)."""

    name: ClassVar[str] = "full"
    default_lr: ClassVar[float] = 5e-5
    lr_range: ClassVar[tuple[float, float]] = (1e-5, 3e-4)

    def oom_tips(self) -> list[str]:
        return ["--recipe lora"]
