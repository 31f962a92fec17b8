"""Hardware fingerprint and software environment of a run."""

from __future__ import annotations

import functools
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil

from frugalml.records import Hardware


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def usable_cpus() -> int:
    """CPUs this process may run on (affinity mask), falling back to the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@functools.cache
def hardware() -> Hardware:
    """The machine's fingerprint; GPU fields come from NVML when a driver is present."""
    from frugalml.measure.energy import nvml_devices

    gpus = nvml_devices()
    return Hardware(
        cpu_model=_cpu_model(),
        cpu_logical_cores=usable_cpus(),
        cpu_physical_cores=psutil.cpu_count(logical=False),
        memory_bytes=psutil.virtual_memory().total,
        gpu_name=gpus.names[0] if gpus.names else None,
        gpu_count=len(gpus.names),
        gpu_driver=gpus.driver,
        platform=platform.platform(),
        hostname=socket.gethostname(),
    )


def git_commit(cwd: str | os.PathLike[str] | None = None) -> str | None:
    """The commit checked out in ``cwd`` (``+dirty`` when the tree has changes), or None."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
        if out.returncode != 0:
            return None
        commit = out.stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return commit + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def environment(cwd: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Python, torch and frugal versions plus the git commit of the working directory.

    Cached per folder for the life of the process: a run reports the commit the process
    started with, and many short runs don't each pay for two ``git`` calls.
    """
    return dict(_environment(str(Path(cwd or os.getcwd()).absolute())))


@functools.cache
def _environment(cwd: str) -> dict[str, Any]:
    from frugalml import __version__

    torch_version = None
    if "torch" in sys.modules:  # never import torch just to report its version
        torch_version = getattr(sys.modules["torch"], "__version__", None)
    else:
        try:
            from importlib.metadata import version

            torch_version = version("torch")
        except Exception:
            torch_version = None
    return {
        "python": platform.python_version(),
        "torch": torch_version,
        "frugal": __version__,
        "git_commit": git_commit(cwd),
        "cwd": cwd,
    }
