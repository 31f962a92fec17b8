"""Pipelines: ordered passes, the rules that make an ordering valid, and applying them.

A pipeline is a tuple of pass configs. It is valid when (``problem`` says why not):

1. stages never decrease (structure → ONNX export → graph optimization → precision → compile
   → runtime settings);
2. every pass accepts the engine the model has at that point (PyTorch until ONNX export);
3. no pass appears twice, and at most one pass per exclusive group (one precision change);
4. the pass can run on the device (fp16 needs a GPU; bf16 on CPU needs AVX512-BF16 or AMX).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from frugalml.errors import BadInput
from frugalml.models import AppliedPass
from frugalml.passes.registry import PassContext, config_to_dict, describe, info_of

if TYPE_CHECKING:
    from frugalml.models import Model

Pipeline = tuple[Any, ...]


def device_problem(config: Any, device: str) -> str | None:
    check = getattr(config, "device_problem", None)
    return check(device) if callable(check) else None


def problem(pipeline: Sequence[Any], *, engine: str = "torch", device: str = "cpu") -> str | None:
    """Why ``pipeline`` is not a valid ordering for a model on ``engine``/``device``; None if it
    is."""
    stage = -1
    names: set[str] = set()
    groups: set[str] = set()
    for config in pipeline:
        info = info_of(config)
        label = describe(config)
        if info.stage < stage:
            return f"{label} cannot come after a later-stage pass"
        if info.engines is not None and engine not in info.engines:
            return f"{label} needs a {' or '.join(info.engines)} model, not {engine}"
        if info.name in names:
            return f"{label} appears twice"
        if info.group and info.group in groups:
            return f"{label}: only one {info.group} pass per pipeline"
        if (why := device_problem(config, device)) is not None:
            return f"{label}: {why}"
        stage = info.stage
        names.add(info.name)
        if info.group:
            groups.add(info.group)
        engine = info.produces or engine
    return None


def is_valid(pipeline: Sequence[Any], *, engine: str = "torch", device: str = "cpu") -> bool:
    return problem(pipeline, engine=engine, device=device) is None


def apply(
    model: Model,
    config: Any | Sequence[Any],
    ctx: PassContext | None = None,
    *,
    texts: Sequence[str] = (),
    seed: int = 0,
) -> Model:
    """Apply one pass config (or a pipeline of them, checked first) and record it.

    ``texts``: unlabelled text for passes that learn from data (calibration, distillation).
    Returns a new ``Model``; the input model is left as it was.
    """
    configs = list(config) if isinstance(config, list | tuple) else [config]
    if ctx is None:
        ctx = PassContext(texts=texts, seed=seed, device=model.device)
    why = problem(configs, engine=model.engine, device=model.device)
    if why is not None:
        raise BadInput(f"invalid pipeline: {why}")
    for cfg in configs:
        info = info_of(cfg)
        if info.needs_data and not ctx.texts:
            raise BadInput(
                f"{describe(cfg)} needs unlabelled text from the task data",
                hint="pass texts=... (optimize passes its tune split)",
            )
        engine_before = model.engine
        out = info.fn(model, cfg, ctx)
        step = AppliedPass(info.name, config_to_dict(cfg))
        replay = out.replay + ((step,) if engine_before in info.replay_on else ())
        model = out.evolve(passes=(*model.passes, step), replay=replay)
    return model
