"""Knowledge distillation on unlabelled text: the student learns to reproduce the teacher.

Shared by layer dropping (a shallower student) and the recovery fine-tune of pruning. The
teacher's outputs are computed once (inference); the student is trained to match them on the
same texts: ``1 - cosine`` between pooled embeddings for an encoder, KL divergence of
temperature-softened logits for a classifier. Dropout is off (the student is only nudged back
towards the teacher); a pruning mask, when given, is re-applied after every step so pruned
weights stay zero.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from frugalml.models import Model
    from frugalml.passes.registry import PassContext

TEMPERATURE = 2.0  # softens logits for classifier distillation


def _pool(hidden: Any, mask: Any, mode: str, normalize: bool) -> Any:
    import torch

    m = mask.unsqueeze(-1).to(hidden.dtype)
    if mode == "cls":
        out = hidden[:, 0]
    elif mode == "max":
        out = hidden.masked_fill(m == 0, -1e4).max(dim=1).values
    else:
        out = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(out, dim=-1) if normalize else out


def distill(
    student: Any,
    model: Model,
    texts: Sequence[str],
    teacher_outputs: np.ndarray,
    *,
    epochs: int = 3,
    lr: float = 1e-4,
    batch_size: int = 32,
    seed: int = 0,
    max_steps: int | None = None,
    masks: dict[str, Any] | None = None,
    hidden_weight: float = 0.0,
    layer_map: Sequence[int] | None = None,
    log: Callable[[str], None] = lambda _m: None,
) -> dict[str, float]:
    """Train ``student`` (a transformers module, in place) towards ``teacher_outputs``.

    ``model`` gives tokenization, pooling and the output kind. ``hidden_weight`` > 0 (an
    encoder only) adds MiniLM/TinyBERT's intermediate-layer loss: the mean squared error
    between each student block's token states and the teacher block ``layer_map[j]``'s
    (teacher = ``model.module``, run per batch without gradients), times ``hidden_weight``.
    Returns the first and last epoch's mean loss.
    """
    import torch
    from transformers import get_linear_schedule_with_warmup

    from frugalml.models import forward_names, threads_for

    if epochs <= 0 or not texts or max_steps == 0:
        return {"loss_first": float("nan"), "loss_last": float("nan"), "steps": 0.0}
    if model.device == "cpu":
        torch.set_num_threads(threads_for(model))
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    names = forward_names(student)
    target = torch.from_numpy(np.asarray(teacher_outputs, dtype=np.float32))
    opt = torch.optim.AdamW(list(student.parameters()), lr=lr, weight_decay=0.0)
    n = len(texts)
    steps_per_epoch = max(1, (n + batch_size - 1) // batch_size)
    total = (
        epochs * steps_per_epoch if max_steps is None else min(max_steps, epochs * steps_per_epoch)
    )
    # linear warm-up from 0 over the first tenth of the steps, then linear decay to 0
    sched = get_linear_schedule_with_warmup(opt, max(1, total // 10), total)
    for p in student.parameters():
        p.requires_grad_(True)
    student.eval()  # no dropout
    losses: list[float] = []
    step = 0
    for epoch in range(epochs):
        order = rng.permutation(n)
        epoch_loss, count = 0.0, 0
        for i in range(0, n, batch_size):
            if step >= total:
                break
            idx = order[i : i + batch_size]
            enc = model.tokenize([texts[j] for j in idx])
            feed = {k: torch.from_numpy(v).to(model.device) for k, v in enc.items() if k in names}
            out = student(**feed, output_hidden_states=hidden_weight > 0)
            loss = _batch_loss(out, target[idx].to(model.device), model, feed)
            if hidden_weight > 0 and model.output != "logits":
                loss = loss + hidden_weight * _hidden_loss(
                    out.hidden_states, model.module, feed, layer_map
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
            opt.step()
            sched.step()
            if masks:
                with torch.no_grad():
                    for pname, p in student.named_parameters():
                        if pname in masks:
                            p.mul_(masks[pname])
            epoch_loss += float(loss.detach()) * len(idx)
            count += len(idx)
            step += 1
        if count:
            losses.append(epoch_loss / count)
            log(f"distill epoch {epoch + 1}/{epochs}: loss {losses[-1]:.5f}")
    student.eval()
    for p in student.parameters():
        p.requires_grad_(False)
    return {
        "loss_first": losses[0] if losses else float("nan"),
        "loss_last": losses[-1] if losses else float("nan"),
        "steps": float(step),
    }


def _batch_loss(out: Any, tgt: Any, model: Model, feed: dict[str, Any]) -> Any:
    """The output loss of one batch: KL at ``TEMPERATURE`` for logits, else 1 - cosine of the
    pooled, normalized embeddings."""
    import torch

    if model.output == "logits":
        logp = torch.log_softmax(out.logits.float() / TEMPERATURE, dim=-1)
        p_t = torch.softmax(tgt / TEMPERATURE, dim=-1)
        return torch.nn.functional.kl_div(logp, p_t, reduction="batchmean")
    emb = _pool(out.last_hidden_state.float(), feed["attention_mask"], model.pooling.mode, True)
    cos = torch.nn.functional.cosine_similarity(emb, torch.nn.functional.normalize(tgt, dim=-1))
    return (1 - cos).mean()


def _hidden_loss(
    student_states: Sequence[Any], teacher: Any, feed: dict[str, Any], layer_map: Any
) -> Any:
    """Mean over student blocks of the masked token-state MSE to the mapped teacher blocks.

    ``student_states``/the teacher's ``hidden_states``: embeddings + one (batch, seq, hidden)
    tensor per block; student block ``j`` (state ``j + 1``) learns teacher state
    ``layer_map[j] + 1``.
    """
    import torch

    with torch.no_grad():
        t_states = teacher(**feed, output_hidden_states=True).hidden_states
    blocks = len(student_states) - 1
    mapping = list(layer_map) if layer_map is not None else list(range(blocks))
    mask = feed["attention_mask"].unsqueeze(-1).to(student_states[-1].dtype)
    tokens = mask.sum().clamp(min=1.0) * student_states[-1].shape[-1]
    total = student_states[-1].new_zeros(())
    for j in range(blocks):
        diff = (student_states[j + 1].float() - t_states[mapping[j] + 1].float()) * mask
        total = total + diff.pow(2).sum() / tokens
    return total / max(1, blocks)


def teacher_outputs(model: Model, texts: Sequence[str]) -> np.ndarray:
    """The (unchanged) model's outputs on ``texts``: pooled embeddings or logits."""
    return model.encode(list(texts))


def recover(
    student: Any,
    model: Model,
    ctx: PassContext,
    *,
    epochs: int,
    lr: float,
    masks: dict[str, Any] | None = None,
) -> dict[str, float]:
    """A pruning pass's optional recovery fine-tune: ``epochs`` of distillation of ``student``
    from ``model`` on the task's text (none: ``{}``). Fails the candidate without text."""
    if epochs <= 0:
        return {}
    from frugalml.errors import CandidateFailed

    if not ctx.texts:
        raise CandidateFailed("the recovery fine-tune needs text from the task data")
    texts = list(ctx.texts)
    return distill(
        student,
        model,
        texts,
        teacher_outputs(model, texts),
        epochs=epochs,
        lr=lr,
        seed=ctx.seed,
        masks=masks,
        log=ctx.log,
    )
