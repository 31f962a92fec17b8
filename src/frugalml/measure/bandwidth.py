"""Memory bandwidth of this machine, by a short copy probe: the roofline of LLM decoding.

Decoding one token reads every weight once (plus the KV cache), so tokens/s can never exceed
bandwidth / bytes read per token. ``memory_bandwidth(device, threads)`` copies a buffer much
larger than the CPU caches (``PROBE_BYTES``) ``REPS`` times with PyTorch (every thread; on
CUDA, on the GPU) and returns the best rate in bytes/s, counting each copy as a read and a
write of the buffer. Measured once per process and device; the figure goes into every LM
evaluation (``memory_bandwidth_bytes_per_s``) next to the hardware it ran on.

``check_roofline`` refuses an achieved rate above the probe's: that is a measurement bug
(a decode timer that misses work, or bytes per token counted too low), not a fast model.
Except for a model that reads fewer than ``CACHE_RESIDENT_BYTES`` per token: its weights may
stay in the CPU caches between tokens, which are faster than the memory the probe measures
(a test-sized model decodes above the DRAM roofline); its MBU is reported, above 1 or not.
"""

from __future__ import annotations

import functools
import time

from frugalml.errors import CandidateFailed

PROBE_BYTES = 128 * 1024 * 1024
REPS = 5
#: below this many bytes read per token, weights may be served from the caches (see above)
CACHE_RESIDENT_BYTES = 32 * 1024 * 1024


@functools.cache
def memory_bandwidth(device: str = "cpu", threads: int | None = None) -> float:
    """Bytes/s moved by the best of ``REPS`` copies of a ``PROBE_BYTES`` float32 buffer."""
    import torch

    if threads and device == "cpu":
        torch.set_num_threads(threads)
    n = PROBE_BYTES // 4
    src = torch.ones(n, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    dst.copy_(src)  # first touch of the pages, untimed
    sync()
    best = float("inf")
    for _ in range(REPS):
        t = time.perf_counter()
        dst.copy_(src)
        sync()
        best = min(best, time.perf_counter() - t)
    del src, dst
    return 2.0 * PROBE_BYTES / best


def check_roofline(
    achieved: float, possible: float, what: str, bytes_per_token: float | None = None
) -> float:
    """``achieved / possible`` (the MBU); ``CandidateFailed`` when it is above 1 (unless the
    model reads fewer than ``CACHE_RESIDENT_BYTES`` per token)."""
    if possible <= 0:
        raise CandidateFailed("the memory bandwidth probe measured nothing")
    mbu = achieved / possible
    cached = bytes_per_token is not None and bytes_per_token < CACHE_RESIDENT_BYTES
    if mbu > 1.0 and not cached:
        raise CandidateFailed(
            f"{what} would read {achieved / 1e9:.1f} GB/s, above this machine's measured "
            f"{possible / 1e9:.1f} GB/s: a measurement bug, not printed"
        )
    return mbu
