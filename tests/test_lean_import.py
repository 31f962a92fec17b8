"""The core alone: ``import frugalml``, ``frugalml.track``, the SQLite ledger and the everyday
commands work with none of the extras installed, and ``import frugalml`` stays light.

Each check runs in a child Python whose first act is an import hook (a ``sys.meta_path``
finder) that makes every installed distribution outside the core unimportable: the core is
pyproject.toml's ``[project].dependencies`` and what they require, so a new core dependency
is a change to pyproject.toml, not to this test. A command that needs an extra says which one
in one line (exit 2).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
# imported by the interpreter or by site before any hook can run (.pth files)
ALWAYS_THERE = {"_distutils_hack", "distutils", "setuptools", "pkg_resources"}


def _core_distributions() -> set[str]:
    """Canonical names of the core dependencies and everything they require, recursively."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    todo = [Requirement(r) for r in project["dependencies"]]
    seen: set[str] = set()
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in seen or (req.marker and not req.marker.evaluate({"extra": ""})):
            continue
        seen.add(name)
        try:
            requires = metadata.requires(req.name) or []
        except metadata.PackageNotFoundError:
            continue  # an optional platform dependency that is not installed here
        todo.extend(Requirement(r) for r in requires)
    return seen


def _blocked_modules() -> list[str]:
    """Top-level import names that only non-core distributions provide."""
    core = _core_distributions() | {"frugalml"}
    blocked: set[str] = set()
    for module, dists in metadata.packages_distributions().items():
        if not all(canonicalize_name(d) in core for d in dists) and module.isidentifier():
            blocked.add(module)
    return sorted(blocked - ALWAYS_THERE - set(sys.stdlib_module_names))


HOOK = """
import importlib.abc, sys
BLOCKED = frozenset({blocked!r})

class _NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not in the core)", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled())
"""


@pytest.fixture(scope="module")
def blocked() -> list[str]:
    names = _blocked_modules()
    # the hook really covers the heavy extras this environment has installed
    installed = metadata.packages_distributions()
    for heavy in ("torch", "transformers", "onnxruntime", "peft", "optuna", "psycopg", "jinja2"):
        if heavy in installed:
            assert heavy in names, f"{heavy} is treated as core"
    return names


def _core_python(blocked: list[str], code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", HOOK.format(blocked=blocked) + code, *args],  # []: no blocking
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        timeout=300,
    )


def _core_frugal(blocked: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    """The ``frugal`` command line in a child that has only the core."""
    run_cli = "import runpy; sys.argv = ['frugal', *sys.argv[1:]]\n"
    run_cli += "runpy.run_module('frugalml', run_name='__main__', alter_sys=True)\n"
    return _core_python(blocked, run_cli, *args)


def test_the_hook_blocks_an_extra(blocked: list[str]) -> None:
    done = _core_python(blocked, "import torch")
    assert done.returncode == 1 and "not in the core" in done.stderr


def test_import_frugalml_imports_nothing_heavy(blocked: list[str]) -> None:
    # not even the core's own numpy / SQLAlchemy: `import frugalml` is a name table
    code = (
        "import frugalml, json; print(json.dumps(sorted(m for m in sys.modules "
        "if m.partition('.')[0] in {'torch', 'numpy', 'sqlalchemy', 'typer'})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", "import sys\n" + code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def _track_code(url: str, heavy: list[str]) -> str:
    """Track a job into a SQLite ledger, read it back; print its id and the extras imported."""
    return f"""
import json
import frugalml
with frugalml.track("lean-job", ledger={url!r}, params={{"n": 3}}) as run:
    total = sum(range(10**5))
with frugalml.Ledger({url!r}) as book:
    runs = book.runs()
assert [r.name for r in runs] == ["lean-job"], runs
assert runs[0].status == "finished" and runs[0].usage.wall_s > 0, runs[0]
imported = sorted({{m.partition(".")[0] for m in sys.modules}} & {set(heavy)!r})
print(json.dumps({{"id": runs[0].id, "imported": imported}}))
"""


def test_track_and_the_sqlite_ledger_with_the_core_alone(blocked: list[str], tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    done = _core_python(blocked, _track_code(url, blocked))
    assert done.returncode == 0, done.stderr[-3000:]
    run_id = json.loads(done.stdout)["id"]

    # with every extra installed (no hook), the same path still imports none of them
    full_url = f"sqlite:///{tmp_path / 'full.db'}"
    full = _core_python([], _track_code(full_url, blocked))
    assert full.returncode == 0, full.stderr[-3000:]
    assert json.loads(full.stdout)["imported"] == [], "track/Ledger imported an extra"

    listed = _core_frugal(blocked, "runs", "--ledger", url, "--json")
    assert listed.returncode == 0, listed.stderr[-3000:]
    assert [r["id"] for r in json.loads(listed.stdout)] == [run_id]

    shown = _core_frugal(blocked, "show", run_id[:8], "--ledger", url, "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["name"] == "lean-job"

    measured = _core_frugal(
        blocked, "measure", "--ledger", url, "--", sys.executable, "-c", "raise SystemExit(3)"
    )
    assert measured.returncode == 3, measured.stderr[-3000:]


@pytest.mark.parametrize("args", [["--help"], ["prices"], ["optimize", "--help"]])
def test_everyday_commands_with_the_core_alone(blocked: list[str], args: list[str]) -> None:
    done = _core_frugal(blocked, *args)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip()


# (command, what its one-line error must name); every command runs on real small files
NEEDS_AN_EXTRA = [
    (["finetune", "minilm", "--data", "{data}", "--eval", "{data}", "--out", "{out}"], "[train]"),
    (["eval", "{model}", "--task", "classification", "--data", "{data}"], "[optimize]"),
    (["data", "audit", "{data}"], "[data]"),
    # the ledger's own message (it names the driver, not yet the extra)
    (["runs", "--ledger", "postgresql+psycopg://u@127.0.0.1:1/db"], "psycopg"),
]


@pytest.mark.parametrize(("args", "needed"), NEEDS_AN_EXTRA, ids=lambda v: str(v)[:20])
def test_a_command_that_needs_an_extra_names_it(
    blocked: list[str], tmp_path: Path, args: list[str], needed: str
) -> None:
    data = tmp_path / "sst.txt"
    data.write_text("1 a fine film\n0 a dull film\n1 moving\n0 tedious\n", encoding="utf-8")
    model = tmp_path / "model"  # a model folder as far as frugal can tell without transformers
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "bert"}', encoding="utf-8")
    (model / "model.safetensors").write_bytes(b"")
    args = [a.format(data=data, out=tmp_path / "out", model=model) for a in args]
    done = _core_frugal(blocked, *args)
    assert done.returncode == 2, done.stderr[-3000:]
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert needed in lines[0], lines[0]


def test_the_extras_table_matches_pyproject() -> None:
    """frugalml/extras.py names, for every package of every extra, the extra to install."""
    from frugalml.extras import OPTIONAL

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = {
        name: {canonicalize_name(Requirement(r).name) for r in reqs}
        for name, reqs in project["optional-dependencies"].items()
        if name not in ("all", "dev")
    }
    modules = metadata.packages_distributions()
    for extra, dists in extras.items():
        for dist in dists:
            provides = {m for m, ds in modules.items() if dist in map(canonicalize_name, ds)}
            if not provides:  # not installed here (llama-cpp-python is built by hand)
                assert extra in OPTIONAL.values(), f"[{extra}] is missing from extras.OPTIONAL"
                continue
            assert provides & set(OPTIONAL), f"{dist} ([{extra}]) is missing from extras.OPTIONAL"
    for module, extra in OPTIONAL.items():
        assert extra is None or extra in extras, f"{module}: no extra [{extra}] in pyproject"
        if module not in modules:
            continue  # its distribution is not installed here: only its extra's name is checked
        dists = {canonicalize_name(d) for d in modules[module]}
        named = [extra] if extra else list(extras)
        assert any(dists & extras[e] for e in named), f"{module}: not in [{extra or 'any'}]"


def test_metadata_has_ranges_and_the_set_up_has_the_pins() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    every = [Requirement(r) for r in project["dependencies"]]
    every += [Requirement(r) for reqs in extras.values() for r in reqs]
    exact = [str(r) for r in every if any(s.operator in ("==", "===") for s in r.specifier)]
    assert not exact, f"exact pins in the metadata force users' environments: {exact}"
    core = {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}
    assert not core & {"torch", "transformers", "onnxruntime", "peft", "optuna", "psycopg"}
    # [all] is every extra but the tools and [llamacpp] (it builds llama.cpp from source)
    (everything,) = [Requirement(r) for r in extras["all"]]
    assert everything.extras == set(extras) - {"all", "dev", "llamacpp"}
    # the README's commands install everything with the exact pins
    pins = (ROOT / "constraints.txt").read_text(encoding="utf-8").split()
    assert "torch==2.13.0" in pins
    make = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "-c constraints.txt" in make and "-e '.[all,dev]'" in make
