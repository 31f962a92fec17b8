"""Evaluate one candidate in its own process (``run_isolated``; by hand:
``python -m frugalml.search.worker SPEC.json``).

Why a process per candidate: peak memory is the candidate's own (not the search's), thread
settings and ``torch.compile`` state cannot leak between candidates, and a candidate that runs
out of memory or crashes the runtime takes down only that process — the search records the
error and goes on. Processes are forked from a small server process (``serve``, started by
``Evaluator``) that has imported torch, transformers and ONNX Runtime once, so each starts in
milliseconds. The measurement itself is ``evaluate`` (the same as ``frugal eval``).

SPEC.json: ``model`` (folder or spec), ``task``, ``data`` (``path`` + ``options`` for
``load_data``), ``seed``, ``device``, ``threads``, ``batch_size``, ``length_sort``,
``instance``, ``region``, ``repeats``, ``split`` (which rows are scored, as in ``evaluate``),
``reference`` (.npy of the reference outputs for the scored rows of a task that
``needs_reference``, or null), ``out`` (result prefix: ``out.json`` + ``out.npz``, or
``out.error.json``).

The server reaps each evaluating process with ``wait4`` and replies with its resource usage
(CPU seconds, peak RSS): the evaluation runs outside the search's process tree until the
server exits, so the search charges these figures to the candidate (``Outcome``). The reply
also says what the process was forked with (niceness, the CPUs it may run on, the thread
variables of ``THREAD_ENV``), so two engines' evaluations can be checked to run alike.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from frugalml.errors import CandidateFailed, FrugalError

KILLED_HINT = "killed by signal {sig} (out of memory?)"

# Variables that set how many threads the libraries of an evaluation start (OpenMP: torch's
# intra-op pool; MKL / OpenBLAS: numpy and torch BLAS; Rust tokenizers). BLAS reads them once,
# when the fork server imports numpy, so they are fixed per server, not per candidate.
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
              "TOKENIZERS_PARALLELISM", "RAYON_NUM_THREADS")  # fmt: skip


def thread_env() -> dict[str, str | None]:
    """This process's ``THREAD_ENV`` values (None: unset)."""
    import os

    return {k: os.environ.get(k) for k in THREAD_ENV}


def main(argv: list[str]) -> int:
    """Command-line entry: evaluate the spec in ``argv[0]`` (a JSON file)."""
    return evaluate_spec(json.loads(Path(argv[0]).read_text()))


def evaluate_spec(spec: dict[str, Any]) -> int:
    """Evaluate one spec, writing ``out.json``/``out.npz`` or ``out.error.json``; exit code."""
    out = Path(spec["out"])
    try:
        import numpy as np

        from frugalml.data import load_data
        from frugalml.search.evaluate import evaluate

        data = load_data(spec["data"]["path"], **spec["data"].get("options", {}))
        ref = np.load(spec["reference"]) if spec.get("reference") else None
        result = evaluate(
            spec["model"],
            spec["task"],
            data,
            metric=spec.get("metric"),
            device=spec.get("device", "cpu"),
            threads=spec.get("threads"),
            batch_size=spec.get("batch_size"),
            length_sort=spec.get("length_sort"),
            instance=spec.get("instance"),
            region=spec.get("region"),
            reference=ref,
            seed=spec.get("seed", 0),
            repeats=spec.get("repeats", 3),
            split=spec.get("split", "auto"),
        )
        result.save(out)
        return 0
    except (FrugalError, MemoryError) as e:
        msg = str(e) if isinstance(e, FrugalError) else "out of memory"
        _error(out, msg)
        return 3
    except Exception as e:  # a broken candidate must not look like a broken search
        text = str(e).splitlines()[0][:400] if str(e) else ""
        if any(sign in text for sign in _OOM_SIGNS):
            _error(out, "out of memory")
        else:
            _error(out, f"{type(e).__name__}: {text}", traceback.format_exc()[-4000:])
        return 3


_OOM_SIGNS = (
    "bad_alloc",
    "Cannot allocate memory",
    "out of memory",
    "failed to map segment",
    "MemoryError",
)


def _error(out: Path, message: str, detail: str = "") -> None:
    out.with_suffix(".error.json").write_text(json.dumps({"error": message, "detail": detail}))


_PRELOAD = (
    "frugalml.search.evaluate",
    "frugalml.measure.track",
    "numpy",
    "scipy.stats",
    "torch",
    "transformers",
    "onnxruntime",
    "frugalml.passes.persist",
    "frugalml.passes",
    "sklearn.linear_model",
)


def serve(stdin: Any = None, stdout: Any = None) -> int:
    """Fork server: import the heavy libraries once, then fork one child per request.

    Protocol (one JSON object per line): request ``{"spec": PATH, "limit": BYTES|null,
    "log": PATH}``; reply ``{"exit": CODE, "cpu_s": S, "peak_rss_bytes": B, "nice": N,
    "cpus": [...], "thread_env": {...}}`` (exit negative: killed by that signal; CPU and peak
    RSS of the child, from ``wait4``; niceness, CPU affinity and ``THREAD_ENV`` it was forked
    with). The child's output goes to ``log`` so it cannot garble the protocol.
    """
    import importlib
    import os

    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    for name in _PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:  # optional pieces; the child imports what it needs
            continue
    stdout.write(json.dumps({"ready": True}) + "\n")
    stdout.flush()
    for line in stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        pid = os.fork()
        if pid == 0:  # the child: one evaluation, then exit without cleanup handlers
            code = 1
            try:
                fd = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                if req.get("limit"):
                    import resource

                    resource.setrlimit(resource.RLIMIT_AS, (req["limit"], req["limit"]))
                code = evaluate_spec(json.loads(Path(req["spec"]).read_text()))
            finally:
                os._exit(code)
        _pid, status, rusage = os.wait4(pid, 0)
        reply = {
            "exit": os.waitstatus_to_exitcode(status),
            "cpu_s": rusage.ru_utime + rusage.ru_stime,
            "peak_rss_bytes": rusage.ru_maxrss * 1024,  # Linux reports KiB
            **_conditions(),
        }
        stdout.write(json.dumps(reply) + "\n")
        stdout.flush()
    return 0


def _conditions() -> dict[str, Any]:
    """What a child forked now inherits: niceness, usable CPUs, thread variables."""
    import os

    return {
        "nice": os.getpriority(os.PRIO_PROCESS, 0),
        "cpus": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "thread_env": thread_env(),
    }


@dataclass(frozen=True)
class Outcome:
    """How one evaluating process ended: exit code, CPU seconds and peak RSS (bytes), and
    the conditions it ran under (niceness, CPUs it could use, ``THREAD_ENV``; None: unknown)."""

    exit: int
    cpu_s: float = 0.0
    peak_rss_bytes: int = 0
    nice: int | None = None
    cpus: list[int] | None = None
    thread_env: dict[str, str | None] | None = None


class Evaluator:
    """Runs evaluations in isolated processes forked from one preloaded server.

    Each evaluation is a fresh process (own memory peak, own thread settings, a crash or OOM
    kills only it) that starts in milliseconds because torch, transformers and ONNX Runtime
    were imported once by the server. Use as a context manager; ``run`` is
    ``run_isolated``'s engine.
    """

    def __init__(self, env: dict[str, str | None] | None = None) -> None:
        self._proc: subprocess.Popen[str] | None = None
        self._ready = False
        # ``THREAD_ENV`` values the server starts with, over this process's (None: unset)
        self.env = dict(env) if env is not None else None

    def start(self) -> Evaluator:
        """Start the server now (it imports in the background while the caller works)."""
        if self._proc is None or self._proc.poll() is not None:
            import os

            env = dict(os.environ)
            for k, v in (self.env or {}).items():
                if v is None:
                    env.pop(k, None)
                else:
                    env[k] = v
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "frugalml.search.worker", "--serve"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                bufsize=1,
                env=env,
            )
            self._ready = False
        return self

    def _started(self) -> subprocess.Popen[str]:
        proc = self.start()._proc
        assert proc is not None and proc.stdout is not None
        if not self._ready:
            if not proc.stdout.readline():
                raise CandidateFailed("the evaluation server did not start")
            self._ready = True
        return proc

    def run(self, spec_path: Path, log: Path, limit: int | None) -> Outcome:
        """Evaluate in a fresh process: its exit code and what it used."""
        proc = self._started()
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(
                json.dumps({"spec": str(spec_path), "limit": limit, "log": str(log)}) + "\n"
            )
            proc.stdin.flush()
            reply = proc.stdout.readline()
        except (BrokenPipeError, OSError):
            reply = ""
        if not reply:  # the server itself died (e.g. the OOM killer picked it): restart later
            self.close()
            return Outcome(exit=-9)
        data = json.loads(reply)
        return Outcome(
            int(data["exit"]),
            float(data.get("cpu_s", 0.0)),
            int(data.get("peak_rss_bytes", 0)),
            data.get("nice"),
            data.get("cpus"),
            data.get("thread_env"),
        )

    def close(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(Exception):
                if self._proc.stdin:
                    self._proc.stdin.close()
                self._proc.wait(timeout=10)
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc = None

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_isolated(
    spec: dict[str, Any],
    work: Path,
    *,
    evaluator: Evaluator | None = None,
    memory_limit_bytes: int | None = None,
    used: list[Outcome] | None = None,
) -> Any:
    """Evaluate ``spec`` in a fresh process; the ``EvalResult`` or ``CandidateFailed``.

    ``memory_limit_bytes`` caps the process's address space (``RLIMIT_AS``): a candidate that
    needs more fails alone instead of pushing the machine into swap or the OOM killer.
    ``used``: the process's ``Outcome`` (CPU, peak RSS) is appended to it, failed or not.
    """
    from frugalml.search.evaluate import EvalResult

    out = Path(spec["out"])
    spec_path = work / (out.name + ".spec.json")
    spec_path.write_text(json.dumps(spec))
    for suffix in (".json", ".npz", ".error.json"):
        out.with_suffix(suffix).unlink(missing_ok=True)
    log = work / (out.name + ".log")
    if evaluator is None:
        with Evaluator() as own:
            outcome = own.run(spec_path, log, memory_limit_bytes)
    else:
        outcome = evaluator.run(spec_path, log, memory_limit_bytes)
    if used is not None:
        used.append(outcome)
    code = outcome.exit
    limit = f" (limit {memory_limit_bytes / 2**20:.0f} MiB)" if memory_limit_bytes else ""
    if out.with_suffix(".error.json").exists():
        err = json.loads(out.with_suffix(".error.json").read_text())
        raise CandidateFailed(err["error"] + (limit if err["error"] == "out of memory" else ""))
    if code < 0:
        raise CandidateFailed("the evaluation process was " + KILLED_HINT.format(sig=-code) + limit)
    if code != 0 or not out.with_suffix(".json").exists():
        tail = log.read_text(errors="replace").strip().splitlines()[-2:] if log.exists() else []
        raise CandidateFailed(
            f"the evaluation process failed (exit {code}){limit}"
            + (": " + " | ".join(tail)[:300] if tail else "")
        )
    return EvalResult.read(out)


if __name__ == "__main__":
    sys.exit(serve() if sys.argv[1:] == ["--serve"] else main(sys.argv[1:]))
