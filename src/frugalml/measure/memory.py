"""Peak memory: host RSS (this process, or a process tree) and accelerator memory."""

from __future__ import annotations

import resource
import sys
from pathlib import Path
from typing import Any

import psutil


def reset_peak_rss() -> bool:
    """Reset this process's peak-RSS mark (Linux ``clear_refs``); False where unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    """This process's peak resident set size since start or the last ``reset_peak_rss``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    # ru_maxrss is in kilobytes on Linux, bytes on macOS
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


def tree_rss_bytes(pid: int) -> int:
    """Current RSS of a process and all its descendants, summed."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total


def _torch_cuda() -> Any:
    """torch.cuda if torch is already imported and CUDA initialised; never initialises it."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        return torch.cuda if torch.cuda.is_initialized() else None
    except Exception:
        return None


def reset_peak_device() -> None:
    cuda = _torch_cuda()
    if cuda is None:
        return
    for i in range(cuda.device_count()):
        cuda.reset_peak_memory_stats(i)


def peak_device_bytes() -> int:
    """Peak accelerator memory torch held (reserved) on any device since the last reset."""
    cuda = _torch_cuda()
    if cuda is None:
        return 0
    return max((cuda.max_memory_reserved(i) for i in range(cuda.device_count())), default=0)


def devices_in_use() -> int:
    """How many accelerators this process has touched through torch (0 if none)."""
    cuda = _torch_cuda()
    if cuda is None:
        return 0
    return sum(1 for i in range(cuda.device_count()) if cuda.memory_reserved(i) > 0) or 1
