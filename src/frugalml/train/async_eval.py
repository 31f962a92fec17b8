"""Evaluating checkpoints while training goes on.

``AsyncEvaluator`` runs a separate evaluator **process** (``python -m frugalml.train.async_eval``):
the trainer hands it a checkpoint (a CPU copy of the trainable tensors) and goes straight back
to training; a writer thread saves the copy as safetensors and sends its path; the evaluator loads
it into its own copy of the model, measures dev accuracy and sends the result back. The
trainer only ever *polls* for results (``poll`` never blocks), so the training loop never waits
for evaluation. Results come back in checkpoint order; the trainer uses them for early
stopping, pruning and keeping the best checkpoint.

On a CPU-only machine the evaluator shares the cores with training; it runs at low priority
(``nice`` 19 by default) and with one thread, so it takes the cycles training leaves idle
rather than slowing training down (its results then arrive later). On a GPU the evaluator
uses the same device.

``SyncEvaluator`` has the same interface but evaluates in the trainer's process, blocking: the
baseline the asynchronous one is measured against, and the final evaluation when ``eval_mode``
is ``none``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import queue
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from frugalml.errors import FrugalError
from frugalml.train.prepare import Encoded, Labels, collate
from frugalml.train.registry import Recipe, recipe_from_json, to_json

EVAL_MODES = ("async", "sync", "none")  # none: only the final model, evaluated in the trainer


@dataclass(frozen=True)
class EvalResult:
    """Dev accuracy of one checkpoint (``accuracy`` in points, 0-100)."""

    step: int
    accuracy: float
    eval_s: float  # seconds the evaluation itself took
    path: str  # the checkpoint file (safetensors)
    train_s: float  # trainer's seconds since the run started when the checkpoint was taken
    by: str = "evaluator"  # "evaluator" (the separate process) or "trainer" (in the loop/after)


@dataclass(frozen=True)
class EvalSpec:
    """What an evaluator needs to rebuild the model and score the dev set (picklable)."""

    model_path: str
    labels: Labels
    recipe: Recipe
    seed: int
    dev: Encoded
    pad_id: int
    batch_size: int
    device: str
    threads: int = 1
    nice: int = 19


def accuracy(model: Any, dev: Encoded, pad_id: int, batch_size: int, device: str) -> float:
    """Dev accuracy in points (fp32, no grad); rows batched by length to pad little."""
    import torch

    was_training = model.training
    model.eval()
    order = sorted(range(len(dev)), key=lambda i: len(dev.input_ids[i]))
    correct = 0
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            batch = collate(dev, order[start : start + batch_size], pad_id)
            labels = batch.pop("labels").to(device)
            logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
            correct += int((logits.argmax(-1) == labels).sum())
    model.train(was_training)
    return 100.0 * correct / max(1, len(dev))


def _checkpoint_path(folder: Path, step: int) -> Path:
    return folder / f"step-{step:07d}.safetensors"


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    from safetensors.torch import save_file

    tmp = path.with_suffix(".tmp")
    save_file(state, str(tmp))
    tmp.replace(path)  # the evaluator never sees a half-written file


def _spec_to_json(spec: EvalSpec) -> dict[str, Any]:
    data = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}
    data["labels"] = list(spec.labels.names)
    data["recipe"] = to_json(spec.recipe)
    data["dev"] = dataclasses.asdict(spec.dev)
    return data


def _spec_from_json(data: dict[str, Any]) -> EvalSpec:
    dev = Encoded(**data.pop("dev"))
    labels = Labels(tuple(data.pop("labels")))
    recipe = recipe_from_json(data.pop("recipe"))
    return EvalSpec(labels=labels, dev=dev, recipe=recipe, **data)


def worker_main(spec_path: str) -> int:
    """The evaluator process: build the model once, then score each checkpoint it is sent.

    Reads ``STEP<TAB>PATH<TAB>TRAIN_S`` lines on stdin (an empty line ends it); writes one JSON
    object per line on stdout: ``{"ready": ...}``, then a result (or ``{"error": ...}``) each.
    """
    spec = _spec_from_json(json.loads(Path(spec_path).read_text()))
    try:
        current = os.getpriority(os.PRIO_PROCESS, 0)
        if spec.nice > current:  # before torch starts its thread pool, so threads inherit it
            os.setpriority(os.PRIO_PROCESS, 0, spec.nice)
    except (OSError, AttributeError):
        pass

    def send(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    try:
        import torch
        from safetensors.torch import load_file

        from frugalml.train.recipes import build_model, load_trainable_state

        if spec.device == "cpu":
            torch.set_num_threads(spec.threads)
        model = build_model(
            Path(spec.model_path), spec.labels, recipe=spec.recipe, seed=spec.seed
        ).to(spec.device)
        model.eval()
        # test hook: a deliberately slow evaluator, to show the trainer never waits for it
        delay_s = float(os.environ.get("FRUGAL_TEST_EVAL_DELAY_S", "0") or 0)
        send({"ready": True})
        for line in sys.stdin:
            if not line.strip():
                break
            step, path, train_s = line.rstrip("\n").split("\t")
            t0 = time.perf_counter()
            time.sleep(delay_s)
            load_trainable_state(model, load_file(path, device=spec.device))
            acc = accuracy(model, spec.dev, spec.pad_id, spec.batch_size, spec.device)
            send(
                {
                    "step": int(step),
                    "accuracy": acc,
                    "eval_s": time.perf_counter() - t0,
                    "path": path,
                    "train_s": float(train_s),
                }
            )
    except BaseException as e:  # reported to the trainer, which decides what to do
        send({"error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc(limit=6)})
        return 1
    return 0


class AsyncEvaluator:
    """Evaluate checkpoints in a separate process; ``submit`` and ``poll`` never block.

    The process is ``python -m frugalml.train.async_eval SPEC.json`` (a plain subprocess, so it
    works from scripts without a ``__main__`` guard, notebooks and tests alike), fed checkpoint
    paths on stdin; a reader thread collects its results from stdout.
    """

    def __init__(self, spec: EvalSpec, folder: Path) -> None:
        self.spec, self.folder = spec, folder
        folder.mkdir(parents=True, exist_ok=True)
        spec_path = folder / "evaluator.json"
        spec_path.write_text(json.dumps(_spec_to_json(spec)))
        self._log = (folder / "evaluator.log").open("w")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "frugalml.train.async_eval", str(spec_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            bufsize=1,
        )
        self._results: queue.Queue[dict[str, Any]] = queue.Queue()
        self._reader = threading.Thread(
            target=self._read_loop, name="frugal-eval-reader", daemon=True
        )
        self._reader.start()
        self._writes: queue.Queue[tuple[int, dict[str, Any], float] | None] = queue.Queue()
        self._writer = threading.Thread(
            target=self._write_loop, name="frugal-ckpt-writer", daemon=True
        )
        self._writer.start()
        self.pending = 0
        self._submitted: dict[int, tuple[str, float]] = {}  # step -> (path, train_s)
        self._returned: set[int] = set()
        self._error: str | None = None
        self._eof = False
        self._closed = False

    def _read_loop(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                self._results.put(json.loads(line))
            except json.JSONDecodeError:  # stray output from a library: not ours
                continue
        self._results.put({"eof": True})

    def _write_loop(self) -> None:
        while (item := self._writes.get()) is not None:
            step, state, train_s = item
            path = _checkpoint_path(self.folder, step)
            try:
                save_checkpoint(state, path)
                assert self._proc.stdin is not None
                self._proc.stdin.write(f"{step}\t{path}\t{train_s!r}\n")
                self._proc.stdin.flush()
            except (OSError, ValueError) as e:  # disk full, or the evaluator is gone
                self._error = f"cannot hand checkpoint {path} to the evaluator: {e}"

    def submit(self, step: int, state: dict[str, Any], train_s: float) -> None:
        """Queue a checkpoint (``trainable_state`` copy) taken at ``step``; returns at once."""
        self.pending += 1
        self._submitted[step] = (str(_checkpoint_path(self.folder, step)), train_s)
        self._writes.put((step, state, train_s))

    def _take(self, timeout: float | None) -> list[EvalResult]:
        out: list[EvalResult] = []
        while True:
            try:
                msg = (
                    self._results.get(timeout=timeout)
                    if timeout is not None
                    else self._results.get_nowait()
                )
            except queue.Empty:
                return out
            timeout = None  # after one blocking wait, only take what is already there
            if "error" in msg:
                self._error = msg["error"]
            elif "eof" in msg:
                self._eof = True
            elif "step" in msg:
                self.pending -= 1
                self._returned.add(msg["step"])
                out.append(
                    EvalResult(
                        msg["step"], msg["accuracy"], msg["eval_s"], msg["path"], msg["train_s"]
                    )
                )

    def _check(self) -> None:
        if self._error:
            raise FrugalError(
                f"the evaluator failed: {self._error.strip().splitlines()[-1]}",
                hint="--eval-mode sync evaluates in the training process",
            )

    def poll(self) -> list[EvalResult]:
        """Results that have arrived (possibly none). Never waits."""
        results = self._take(None)
        self._check()
        return results

    def finish(self, evaluate: Callable[[str], float]) -> list[EvalResult]:
        """After the loop: the results that came back, plus the outstanding checkpoints
        evaluated by ``evaluate(path) -> accuracy`` in the trainer's own process.

        The trainer no longer waits on the evaluator process here: at low priority on a busy
        CPU it could take long to get through a backlog, while the trainer, now idle, is as
        fast. The evaluator is stopped (any evaluation it was in the middle of is dropped).
        """
        self._writer_stop()
        results = self._take(None)
        self._stop_process(terminate=True)
        results += self._take(None)
        for step, (path, train_s) in sorted(self._submitted.items()):
            if step in self._returned:
                continue
            t0 = time.perf_counter()
            acc = evaluate(path)
            results.append(
                EvalResult(step, acc, time.perf_counter() - t0, path, train_s, by="trainer")
            )
            self._returned.add(step)
            self.pending -= 1
        return results

    def _writer_stop(self) -> None:
        self._writes.put(None)
        self._writer.join(timeout=600)  # every queued checkpoint is on disk afterwards

    def _stop_process(self, *, terminate: bool) -> None:
        if self._proc.poll() is None:
            if terminate:
                self._proc.terminate()
            else:
                with contextlib.suppress(OSError, ValueError):
                    assert self._proc.stdin is not None
                    self._proc.stdin.write("\n")
                    self._proc.stdin.close()
        try:
            self._proc.wait(timeout=30)  # waited for: its CPU time counts in this run's usage
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=10)
        self._reader.join(timeout=10)

    @property
    def returncode(self) -> int | None:
        """The evaluator process's exit status once it has ended and been reaped, else None."""
        return self._proc.returncode

    def close(self) -> None:
        """Stop the writer and the evaluator (pending checkpoints are dropped). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._writer_stop()
        # early stop: outstanding results are no longer wanted, so don't spend on them
        self._stop_process(terminate=self.pending > 0)
        for stream in (self._proc.stdin, self._proc.stdout):
            with contextlib.suppress(OSError, ValueError):
                if stream is not None:
                    stream.close()
        self._log.close()


class SyncEvaluator:
    """Evaluate in the trainer's process, blocking the loop; same interface as the async one."""

    def __init__(self, spec: EvalSpec, folder: Path, model: Any) -> None:
        self.spec, self.folder, self.model = spec, folder, model
        folder.mkdir(parents=True, exist_ok=True)
        self.pending = 0
        self._done: list[EvalResult] = []

    def submit(self, step: int, state: dict[str, Any], train_s: float) -> None:
        path = _checkpoint_path(self.folder, step)
        save_checkpoint(state, path)
        t0 = time.perf_counter()
        acc = accuracy(
            self.model, self.spec.dev, self.spec.pad_id, self.spec.batch_size, self.spec.device
        )
        self._done.append(
            EvalResult(step, acc, time.perf_counter() - t0, str(path), train_s, by="trainer")
        )

    def poll(self) -> list[EvalResult]:
        done, self._done = self._done, []
        return done

    def finish(self, evaluate: Callable[[str], float]) -> list[EvalResult]:
        return self.poll()

    def close(self) -> None:
        return None


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1]))


def make_evaluator(mode: str, spec: EvalSpec, folder: Path, model: Any) -> Any:
    """The evaluator for ``mode`` (one of ``EVAL_MODES``): a separate process for ``async``,
    the trainer's own process otherwise (``none`` only ever evaluates the final model)."""
    if mode == "async":
        return AsyncEvaluator(spec, folder)
    return SyncEvaluator(spec, folder, model)
