"""The pass registry: each technique registers its frozen config and one apply function.

    @register(QuantizeDynamic, stage=30, engines=("torch", "onnx"), group="precision",
              replay_on=("torch",))
    def quantize_dynamic(model: Model, cfg: QuantizeDynamic, ctx: PassContext) -> Model: ...

Registration lives in the technique's own module; adding a pass touches that one file (plus
its import in ``passes/__init__.py``). The metadata drives the ordering rules of pipelines:

- ``stage``: passes run in non-decreasing stage order (structure 10-19 → ONNX export 20 →
  graph optimization 25 → precision 30 → compile 40 → runtime settings 90);
- ``engines``: the engines (``torch``/``onnx``, the names of ``frugalml.models.runtimes``)
  the pass accepts, ``None`` for every engine (a pass that changes only run settings);
  ``produces``: the engine after it (ONNX export turns ``torch`` into ``onnx``);
- ``group``: at most one pass per group in a pipeline (``precision``: int8 dynamic, int8
  static, fp16/bf16);
- ``replay_on``: engines where the pass only changes how the model runs, not its weights;
  ``save`` keeps the weights before it and ``load`` re-applies it;
- ``needs_data``: it learns from unlabelled text of the task data (calibration, distillation).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from frugalml.errors import BadInput

if TYPE_CHECKING:
    from frugalml.models import Model

C = TypeVar("C")
ApplyFn = Callable[["Model", Any, "PassContext"], "Model"]


@dataclass
class PassContext:
    """What passes may use besides the model.

    ``texts``: unlabelled text from the task's tune split (calibration, distillation).
    ``corpus``: more unlabelled sentences a pass may add to them (``optimize --extra-text``;
    empty: passes that want more text take the standard library's docstrings).
    ``work_dir``: where passes write intermediate files (ONNX graphs). ``seed``: for anything
    random. ``device``: where training passes run. ``log``: progress messages.
    """

    texts: Sequence[str] = ()
    corpus: Sequence[str] = ()
    work_dir: Path | None = None
    seed: int = 0
    device: str = "cpu"
    log: Callable[[str], None] = field(default=lambda _msg: None)

    def workdir(self) -> Path:
        if self.work_dir is None:
            self.work_dir = Path(tempfile.mkdtemp(prefix="frugal-passes-"))
        self.work_dir.mkdir(parents=True, exist_ok=True)
        return self.work_dir


@dataclass(frozen=True)
class PassInfo:
    name: str
    config: type
    fn: ApplyFn
    stage: int
    engines: tuple[str, ...] | None
    produces: str | None = None
    group: str | None = None
    replay_on: tuple[str, ...] = ()
    needs_data: bool = False
    doc: str = ""


PASSES: dict[str, PassInfo] = {}
_BY_CONFIG: dict[type, PassInfo] = {}


def register(
    config: type[C],
    *,
    stage: int,
    engines: tuple[str, ...] | None = ("torch", "onnx"),
    produces: str | None = None,
    group: str | None = None,
    replay_on: tuple[str, ...] = (),
    needs_data: bool = False,
    name: str | None = None,
) -> Callable[[ApplyFn], ApplyFn]:
    """Register ``fn`` as the apply function of ``config`` (a frozen dataclass)."""
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"{config.__name__} must be a frozen dataclass")
    pass_name = name or _snake(config.__name__)

    def deco(fn: ApplyFn) -> ApplyFn:
        info = PassInfo(
            pass_name,
            config,
            fn,
            stage,
            engines,
            produces,
            group,
            replay_on,
            needs_data,
            (config.__doc__ or "").strip().splitlines()[0] if config.__doc__ else "",
        )
        PASSES[pass_name] = info
        _BY_CONFIG[config] = info
        return fn

    return deco


def _snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and not name[i - 1].isupper():
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


def info_of(config: Any) -> PassInfo:
    info = _BY_CONFIG.get(type(config))
    if info is None:
        raise BadInput(
            f"{type(config).__name__} is not a registered pass config",
            hint=f"known passes: {', '.join(sorted(PASSES))}",
        )
    return info


def config_to_dict(config: Any) -> dict[str, Any]:
    data = dataclasses.asdict(config)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}


def config_from(name: str, data: dict[str, Any]) -> Any:
    """Rebuild a config from its registered name and dict (manifests, candidates.json)."""
    if name not in PASSES:
        raise BadInput(f"unknown pass '{name}'", hint=f"known passes: {', '.join(sorted(PASSES))}")
    cls = PASSES[name].config
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in fields}
    return cls(**kwargs)


def run(model: Model, config: Any, ctx: PassContext | None = None) -> Model:
    """Run a pass's function without recording it (used by ``load`` to replay)."""
    info = info_of(config)
    return info.fn(model, config, ctx or PassContext(device=model.device))


def describe(config: Any) -> str:
    """``quantize_dynamic(weight_type=qint8)``: a pass and its non-default settings."""
    info = info_of(config)
    defaults = info.config()
    changed = [
        f"{f.name}={getattr(config, f.name)}"
        for f in dataclasses.fields(config)
        if getattr(config, f.name) != getattr(defaults, f.name)
    ]
    return f"{info.name}({', '.join(changed)})" if changed else info.name


@contextlib.contextmanager
def quiet_logs(*names: str) -> Iterator[None]:
    """Silence library loggers (and the root logger) below ERROR for the duration."""
    loggers = [logging.getLogger(n) for n in ("", *names)]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
