"""Start a real ``frugal serve`` in a subprocess on a free loopback port (bundled MiniLM)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx2

STARTUP_S = 300  # loading torch + MiniLM on a busy 2-core machine


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[str]
    ledger_url: str
    log: Path
    run_id: str

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 120) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(
    tmp: Path, *args: str, ledger_url: str | None = None, model: str = "minilm"
) -> Server:
    port = free_port()
    ledger_url = ledger_url or f"sqlite:///{tmp / 'ledger.db'}"
    log = tmp / f"serve-{port}.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    with log.open("w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "frugalml", "serve", model, "--port", str(port),
             "--ledger", ledger_url, "--threads", "1", *args],
            stdout=fh, stderr=subprocess.STDOUT, text=True, env=env,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"frugal serve exited {proc.returncode}:\n{log.read_text()}")
        try:
            r = httpx2.get(url + "/health", timeout=5, trust_env=False)
            if r.status_code == 200:
                return Server(url, proc, ledger_url, log, r.json()["run_id"])
        except httpx2.TransportError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise AssertionError(
        f"frugal serve did not answer /health in {STARTUP_S} s:\n{log.read_text()}"
    )
