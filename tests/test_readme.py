"""Every command in the README runs as written after its set-up command (``make demo``).

The README's ```bash blocks are read line by line (a trailing ``\\`` continues a line, ``#``
starts a comment); its ```python blocks are run as scripts. The commands run in a scratch
folder laid out like the repository's parent: ``work/`` (the current directory) next to
``shared/data`` (the real datasets, as the README says), with their own frugal data folder.

The fast test checks that every command is complete (no ``RUN_ID``-style placeholders), parses
with the CLI (known commands, known options, values of the right type) and names data that
exists. The slow one runs them all in README order; commands that would take many minutes get
small settings appended (``SMALL``: the last value of an option wins), everything else runs
exactly as written.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SETUP = "make demo"  # the README's set-up command: sets up .venv, then runs `frugal demo`
SKIP = {"make test"}  # the test suite itself
# command (first words) -> options appended so the run takes seconds, not minutes
SMALL: dict[str, list[str]] = {
    # fewer sentences; a budget that lets the search reach its first converted candidate
    # even on a busy machine (an idle 2-core one tries all of them well within it)
    "frugal demo": ["--sentences", "64", "--budget-minutes", "6"],
    # fewer candidates, not a shorter budget: the search must reach a cheaper candidate
    "frugal optimize": ["--passes", "onnx_export,quantize_dynamic", "--rounds", "1"],
    "frugal eval": ["--rounds", "1"],
    "frugal compare": ["--rounds", "1"],
    "frugal gate": ["--rounds", "1"],
    "frugal finetune": ["--max-steps", "6", "--max-length", "32", "--batch-size", "16"],
    "frugal tune": ["--trials", "2", "--epochs", "0.01", "--max-length", "32"],
    "frugal data audit": ["--embedder", "tfidf"],
    "frugal data clean": ["--embedder", "tfidf"],
    "frugal data select": ["--embedder", "tfidf"],
}
# exit codes a command may end with, as the README says (gate: 0 pass, 1 fail)
EXITS = {"frugal gate": {0, 1}}
# commands that serve until stopped: started in the background, the README's next commands run
# against them, then they get SIGTERM and must end cleanly (exit 0)
SERVERS = {"frugal serve"}
PLACEHOLDER = re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b|\b(?:TRAIN|DEV|CMD|MODEL)\b")


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def commands() -> list[list[str]]:
    """Every shell command of the README (as argv lists), in order."""
    out = []
    for block in blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            argv = shlex.split(line, comments=True)
            if argv:
                out.append(argv)
    return out


def _name(argv: list[str]) -> str:
    """``frugal data audit`` / ``frugal eval`` / ``make demo``: the words naming a command."""
    words = [argv[0]]
    for word in argv[1:]:
        if word.startswith("-") or "/" in word or "." in word:
            break
        words.append(word)
        if words[:2] != ["frugal", "data"] or len(words) == 3:
            break
    return " ".join(words)


def test_readme_commands_are_complete_and_parse(shared_data: Path) -> None:
    import typer

    from frugalml.cli import app

    group = typer.main.get_command(app)
    argvs = commands()
    assert [" ".join(a) for a in argvs[:2]] == [SETUP, "make test"]  # the set-up comes first
    for argv in argvs:
        line = shlex.join(argv)
        assert not PLACEHOLDER.search(line), f"a placeholder in the README: {line}"
        if argv[0] == "make":
            continue
        assert argv[0] == "frugal", line
        for word in argv:  # the data it names is where the README says
            if word.startswith("../shared/data/"):
                assert (shared_data / word.removeprefix("../shared/data/")).is_file(), word
        args = argv[1:]  # (`frugal measure -- CMD` takes CMD as arguments)
        cmd = group
        while hasattr(cmd, "commands"):  # walk down the groups to the command
            assert args and args[0] in cmd.commands, f"unknown command in the README: {line}"
            cmd, args = cmd.commands[args[0]], args[1:]
        cmd.make_context(cmd.name, list(args))  # raises on an unknown option or a bad value


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=900, check=False
    )


def _start_server(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """Start ``frugal serve ... --port N`` and wait until its /health answers."""
    import time
    import urllib.request

    port = argv[argv.index("--port") + 1]
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"{shlex.join(argv)} exited: {proc.communicate()[1][-3000:]}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5):
                return proc
        except OSError:
            time.sleep(1)
    proc.kill()
    raise AssertionError(f"{shlex.join(argv)} did not answer /health within 300 s")


def _stop_server(proc: subprocess.Popen[str], argv: list[str]) -> None:
    import signal

    proc.send_signal(signal.SIGTERM)
    _out, errs = proc.communicate(timeout=120)
    assert proc.returncode == 0, f"{shlex.join(argv)} ended {proc.returncode}: {errs[-3000:]}"


@pytest.mark.slow
def test_readme_commands_run_as_written(shared_data: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "data").symlink_to(shared_data)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "FRUGAL_HOME": str(tmp_path / "home"),
        "FRUGAL_CONFIG": str(tmp_path / "home" / "none.toml"),
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH")) if p
        ),
    }
    env.pop("FRUGAL_LEDGER", None)
    ran = set()
    servers: list[tuple[subprocess.Popen[str], list[str]]] = []
    try:
        _run_all(work, env, ran, servers)
    finally:
        for proc, _argv in servers:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    for proc, argv in servers:
        assert proc.returncode is not None, shlex.join(argv)


def _run_all(
    work: Path,
    env: dict[str, str],
    ran: set[str],
    servers: list[tuple[subprocess.Popen[str], list[str]]],
) -> None:
    """Every README command in order; servers in the background, stopped after the last."""
    for argv in commands():
        if " ".join(argv) in SKIP:
            continue
        if " ".join(argv) == SETUP:
            argv = ["frugal", "demo"]  # what `make demo` runs, once .venv exists
        if " ".join(argv) in ran:  # the README's `frugal demo` is the set-up's own command
            continue
        ran.add(" ".join(argv))
        name = _name(argv)
        argv = argv + SMALL.get(name, [])
        if name in SERVERS:
            servers.append((_start_server(argv, work, env), argv))
            continue
        done = _run(argv, work, env)
        assert done.returncode in EXITS.get(name, {0}), (
            f"{shlex.join(argv)} exited {done.returncode}:\n{done.stdout[-2000:]}\n"
            f"{done.stderr[-3000:]}"
        )
    for proc, argv in servers:
        _stop_server(proc, argv)
    for i, code in enumerate(blocks("python")):
        script = work / f"readme_{i}.py"
        script.write_text(code, encoding="utf-8")
        done = _run([sys.executable, str(script)], work, env)
        assert done.returncode == 0, f"README python block {i}:\n{code}\n{done.stderr[-3000:]}"
    assert (work / "report.html").is_file() and (work / "out" / "best").is_dir()
