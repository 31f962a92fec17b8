"""The measurement of a causal LM: quality on its task and the cost of its tokens.

``evaluate_lm(model, task, text, ...)`` is what ``frugal eval`` runs when the model is a
causal LM (and what ``optimize`` runs on each LM candidate). It returns an ``LMEvalResult``:
every key of an encoder's ``EvalResult`` (there ``throughput_per_s`` is decode tokens/s at
the chosen batch size, ``latency_ms_p50/p99`` the inter-token latency, ``cost_usd_per_1m``
the $ per 1M *output* tokens, ``energy_j_per_1k`` per 1k output tokens) plus the LM keys.

Method
------
1. Quality: the task's ``score`` (perplexity windows, fidelity against the original model,
   generation matches); its settings (window, stride ...) are in ``task_figures``.
2. Timing: ``prompts`` prompts of ``prompt_tokens`` tokens (the first tokens of successive
   stretches of the text; ``generation``: the data's prompts), each decoded greedily for
   ``new_tokens`` tokens with the KV cache, batch 1, after one untimed warm-up, ``repeats``
   passes. Time to first token = the prefill of a prompt (its forward pass + the first
   token); inter-token = each later decode step. ``prefill_tokens_per_s`` = prompt tokens /
   prefill seconds; ``decode_tokens_per_s`` = decode steps / their seconds (the median pass);
   at a batch size above 1 the same prompts run stacked (``decode_tokens_per_s_batch``).
3. Usage (``UsageMeter``) over the timed passes: ``energy_j_per_1k_tokens`` per 1k generated
   tokens (prefill included), labelled by ``energy_source`` (a reading or an estimate).
4. Cost: the price of one second (an instance's hourly price / 3600, or on ``local``
   hardware the measured average power at the kWh price) times the seconds per token:
   ``cost_usd_per_1m_output_tokens`` from decode tokens/s at the chosen batch size,
   ``cost_usd_per_1m_input_tokens`` from prefill tokens/s.
5. Roofline: ``bytes_per_token`` = the weights as run (each tensor's stored bytes) / batch
   + the KV cache a decode step reads (2 x layers x KV heads x head size x element bytes x
   mean context). Achieved bandwidth = bytes per token x decode tokens/s;
   ``memory_bandwidth_bytes_per_s`` is the copy probe (``measure.bandwidth``); ``mbu`` =
   achieved / measured. A decode rate above the roofline is refused (``CandidateFailed``).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from frugalml.data.lm_text import LMText, from_texts, read_text, tokens_of
from frugalml.errors import BadInput
from frugalml.models import Model
from frugalml.search.evaluate import EvalResult

PROMPT_TOKENS = 64
TIMING_PROMPTS = 2
TIMING_NEW_TOKENS = 32


@dataclass(frozen=True)
class LMEvalResult(EvalResult):
    prefill_tokens_per_s: float = 0.0
    decode_tokens_per_s: float = 0.0
    decode_tokens_per_s_batch: float = 0.0
    time_to_first_token_ms_p50: float = 0.0
    time_to_first_token_ms_p99: float = 0.0
    inter_token_ms_p50: float = 0.0
    inter_token_ms_p99: float = 0.0
    cost_usd_per_1m_input_tokens: float = 0.0
    cost_usd_per_1m_output_tokens: float = 0.0
    energy_j_per_1k_tokens: float = 0.0
    bytes_per_token: float = 0.0
    weights_bytes: int = 0
    kv_bytes_per_token: float = 0.0
    memory_bandwidth_bytes_per_s: float = 0.0
    achieved_bandwidth_bytes_per_s: float = 0.0
    mbu: float = 0.0
    prompt_tokens: int = 0
    new_tokens: int = 0
    task_figures: dict[str, Any] = dataclasses.field(default_factory=dict)


def as_text(data: Any) -> LMText:
    from frugalml.data import Dataset

    if isinstance(data, LMText):
        return data
    if isinstance(data, Dataset):
        return from_texts(data.texts_all(), source=data.source or "")
    if isinstance(data, (list, tuple)):  # documents given in Python
        return from_texts([str(t) for t in data], source="")
    return read_text(Path(data))


def kv_bytes_per_position(model: Model) -> float:
    """Bytes of K and V cached per token position, all layers (the model's run dtype)."""
    cfg = model.config
    layers = int(cfg.get("num_hidden_layers") or 0)
    heads = int(cfg.get("num_attention_heads") or 1)
    kv_heads = int(cfg.get("num_key_value_heads") or heads)
    head_dim = int(cfg.get("head_dim") or (int(cfg.get("hidden_size") or 0) // heads))
    elem = {"bfloat16": 2, "float16": 2}.get(model.dtype, 4)
    return float(2 * layers * kv_heads * head_dim * elem)


def timing_prompts(model: Model, text: LMText, task_name: str, count: int) -> list[np.ndarray]:
    if task_name == "generation":
        from frugalml.tasks.generation import prompt_ids

        return prompt_ids(model, text, count, TIMING_NEW_TOKENS)
    length = max(1, min(PROMPT_TOKENS, int(model.runtime.max_length) - TIMING_NEW_TOKENS))
    ids = tokens_of(model.tokenizer, text.raw, length * count)
    if len(ids) < length:
        raise BadInput(
            f"{text.source or 'the text'} has {len(ids)} tokens; timing needs {length}",
            hint="give more text",
        )
    return [ids[i * length : (i + 1) * length] for i in range(max(1, len(ids) // length))][:count]


def evaluate_lm(
    model: Model,
    task: str,
    data: Any,
    *,
    metric: str | None = None,
    instance: str | None = None,
    region: str | None = None,
    reference: Model | None = None,
    seed: int = 0,
    repeats: int = 3,
    size_bytes: int | None = None,
    new_tokens: int = TIMING_NEW_TOKENS,
    prompts: int = TIMING_PROMPTS,
    task_options: dict[str, Any] | None = None,
    scored: LMEvalResult | None = None,
) -> LMEvalResult:
    """Measure a causal LM (see the module docstring). ``reference``: fidelity's original.

    ``scored``: an earlier result of the same model, task and text whose quality (and
    per-row outputs) are taken as they are: only the timing is measured again (the later
    rounds of ``frugal compare``; quality does not change from one round to the next)."""
    from frugalml.measure.bandwidth import check_roofline, memory_bandwidth
    from frugalml.measure.prices import resolve
    from frugalml.models import threads_for

    if repeats < 1:
        raise BadInput("repeats must be at least 1")
    price = resolve(instance, region)
    text = as_text(data)
    if scored is None:
        the_task, items, figures, quality = _score(
            model, task, text, metric=metric, seed=seed, reference=reference,
            task_options=task_options,
        )  # fmt: skip
    else:
        the_task = _Scored(scored.task, scored.metric, scored.higher_is_better)
        items, figures, quality = scored.items, scored.task_figures, scored.quality
    new_tokens = int((task_options or {}).get("new_tokens", new_tokens))

    batch = int(model.runtime.batch_size)
    rows = timing_prompts(model, text, task, max(prompts, batch))
    solo = rows[:prompts]
    t = _time_decoding(model, rows, solo, batch, new_tokens, repeats, price)
    usage, batch_rate = t.usage, t.batch_rate
    decode_rate = float(np.median(t.pass_rates))
    prefill_rate = t.prefill_tokens / t.prefill_s if t.prefill_s > 0 else 0.0
    energy_per_1k = usage.energy_j / max(t.generated, 1) * 1000.0
    usd_per_s = _usd_per_s(price, usage)
    cost_out = 1e6 / batch_rate * usd_per_s if batch_rate > 0 else math.inf
    cost_in = 1e6 / prefill_rate * usd_per_s if prefill_rate > 0 else math.inf

    weights = model.engine_runtime.weights_bytes(model)
    mean_context = float(np.mean([len(r) for r in solo])) + new_tokens / 2.0
    kv = kv_bytes_per_position(model) * mean_context
    bytes_per_token = weights + kv  # batch 1: every weight and the cache read per token
    bandwidth = memory_bandwidth(model.device, threads_for(model))
    achieved = bytes_per_token * decode_rate
    mbu = check_roofline(
        achieved, bandwidth, f"decoding at {decode_rate:.1f} tokens/s", bytes_per_token
    )
    if batch > 1:
        check_roofline(
            (weights + batch * kv) * batch_rate / batch, bandwidth,
            f"decoding at {batch_rate:.1f} tokens/s (batch {batch})", weights + batch * kv,
        )  # fmt: skip
    lat_ms = np.asarray(t.steps or [0.0]) * 1e3
    ttft_ms = np.asarray(t.ttft) * 1e3
    peak = usage.peak_device_bytes if model.device.startswith("cuda") else usage.peak_host_bytes
    kwh_per_1m = energy_per_1k * 1000.0 / 3.6e6
    return LMEvalResult(
        task=the_task.name, quality=float(quality), metric=the_task.metric,
        higher_is_better=the_task.higher_is_better, throughput_per_s=batch_rate,
        latency_ms_p50=float(np.percentile(lat_ms, 50)),
        latency_ms_p99=float(np.percentile(lat_ms, 99)),
        cost_usd_per_1m=float(cost_out), energy_j_per_1k=float(energy_per_1k),
        energy_source=usage.energy_source, peak_memory_bytes=int(peak),
        size_bytes=int(size_bytes if size_bytes is not None else model.size_bytes()),
        device=model.device, threads=threads_for(model), batch_size=batch, length_sort=False,
        rows=len(next(iter(items.values()))), texts_timed=t.generated, repeats=repeats,
        warmup_s=t.warmup_s, timed_s=float(sum(t.ttft) + sum(t.steps)), cpu_s=usage.cpu_s,
        usd_per_hour=price.usd_per_hour, instance=price.instance, region=price.region,
        co2_g_per_1m=kwh_per_1m * price.g_co2_per_kwh, model=model.describe(), items=items,
        prefill_tokens_per_s=float(prefill_rate), decode_tokens_per_s=decode_rate,
        decode_tokens_per_s_batch=batch_rate,
        time_to_first_token_ms_p50=float(np.percentile(ttft_ms, 50)),
        time_to_first_token_ms_p99=float(np.percentile(ttft_ms, 99)),
        inter_token_ms_p50=float(np.percentile(lat_ms, 50)),
        inter_token_ms_p99=float(np.percentile(lat_ms, 99)),
        cost_usd_per_1m_input_tokens=float(cost_in), cost_usd_per_1m_output_tokens=float(cost_out),
        energy_j_per_1k_tokens=float(energy_per_1k), bytes_per_token=float(bytes_per_token),
        weights_bytes=int(weights), kv_bytes_per_token=float(kv),
        memory_bandwidth_bytes_per_s=float(bandwidth),
        achieved_bandwidth_bytes_per_s=float(achieved), mbu=float(mbu),
        prompt_tokens=int(np.mean([len(r) for r in solo])),
        new_tokens=new_tokens, task_figures=figures,
    )  # fmt: skip


def _usd_per_s(price: Any, usage: Any) -> float:
    """$ a second of this work: the instance's price, or its energy's where priced by kWh."""
    if price.priced_by_hour:
        return float(price.usd_per_hour) / 3600.0
    watts = usage.energy_j / usage.wall_s if usage.wall_s > 0 else 0.0
    return float(watts * price.usd_per_kwh / 3.6e6)


def _score(
    model: Model,
    task: str,
    text: LMText,
    *,
    metric: str | None,
    seed: int,
    reference: Model | None,
    task_options: dict[str, Any] | None,
) -> tuple[Any, dict[str, Any], dict[str, Any], float]:
    """(the task, its items, its figures, the quality) of ``model`` on ``text``."""
    from frugalml.errors import CandidateFailed
    from frugalml.passes.persist import load
    from frugalml.tasks.lm_base import LM_TASKS, require_lm

    if task not in LM_TASKS:
        raise BadInput(
            f"the {task} task does not run on a causal language model",
            hint=f"use one of {', '.join(LM_TASKS)}",
        )
    require_lm(model, task)
    the_task: Any = LM_TASKS[task](metric=metric, seed=seed, **(task_options or {}))
    if reference is None and task in ("fidelity", "generation") and model.passes:
        try:
            reference = load(model.base, device=model.device)
        except BadInput as e:
            raise BadInput(
                f"{task} compares with the original model '{model.base}', which cannot be "
                f"loaded: {e.message}"
            ) from e
    items, figures = the_task.score(model, text, reference if reference is not None else model)
    quality = the_task.quality_on(items)
    if math.isnan(quality):
        raise CandidateFailed(f"{task} is undefined on this text")
    return the_task, items, figures, float(quality)


@dataclass(frozen=True)
class _Scored:
    """What ``evaluate_lm`` reads of a task whose scores it was given."""

    name: str
    metric: str
    higher_is_better: bool


@dataclass
class _Timing:
    warmup_s: float = 0.0
    ttft: list[float] = dataclasses.field(default_factory=list)
    steps: list[float] = dataclasses.field(default_factory=list)
    pass_rates: list[float] = dataclasses.field(default_factory=list)
    prefill_tokens: int = 0
    prefill_s: float = 0.0
    generated: int = 0
    batch_rate: float = 0.0
    usage: Any = None


def _time_decoding(
    model: Model,
    rows: list[np.ndarray],
    solo: list[np.ndarray],
    batch: int,
    new_tokens: int,
    repeats: int,
    price: Any,
) -> _Timing:
    """Greedy decoding of the timing prompts at batch 1 (and stacked at ``batch``), metered."""
    from frugalml.measure.hardware import hardware
    from frugalml.measure.timing import device_sync
    from frugalml.measure.track import UsageMeter

    runtime = model.engine_runtime
    t = _Timing()
    stacked = None
    if batch > 1:
        same = min(len(r) for r in rows[:batch])
        stacked = np.stack([r[:same] for r in rows[:batch]])
        if len(stacked) < batch:
            raise BadInput(f"the text gives {len(stacked)} prompts; batch {batch} needs more")
    t0 = time.perf_counter()
    # warm-up, untimed, at each shape timed below (a compiled decode step compiles per shape)
    runtime.greedy(model, solo[0][None, :], min(4, new_tokens))
    if stacked is not None:
        runtime.greedy(model, stacked, min(4, new_tokens))
    device_sync()
    t.warmup_s = time.perf_counter() - t0
    meter = UsageMeter(price, hardware())
    meter.start()
    for _ in range(repeats):
        pass_steps: list[float] = []
        for ids in solo:
            _tok, pre, steps = runtime.greedy(model, ids[None, :], new_tokens, sync=device_sync)
            t.ttft.append(pre)
            t.prefill_tokens += len(ids)
            t.prefill_s += pre
            pass_steps.extend(steps)
            t.generated += new_tokens
        t.steps.extend(pass_steps)
        t.pass_rates.append(len(pass_steps) / sum(pass_steps) if sum(pass_steps) > 0 else 0.0)
    t.batch_rate = float(np.median(t.pass_rates))
    if stacked is not None:
        rates = []
        for _ in range(repeats):
            _tok, _pre, steps = runtime.greedy(model, stacked, new_tokens, sync=device_sync)
            t.generated += batch * new_tokens
            rates.append(batch * len(steps) / sum(steps) if sum(steps) > 0 else 0.0)
        t.batch_rate = float(np.median(rates))
    t.usage = meter.stop()
    return t
