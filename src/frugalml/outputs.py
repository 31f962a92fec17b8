"""The one rule for every command that writes: never overwrite or delete what frugal did not write.

frugal marks what it writes with a manifest, ``.frugal-written.json``, in the folder it wrote
to: a folder frugal creates (``optimize --out``, ``finetune --out``) holds its own, listing the
files and folders frugal wrote in it; a single file (``report --out``, ``data clean --out``)
is listed in the manifest of the folder it lies in. Each file is listed with its size and
modification time, so a file the user replaced since is no longer frugal's.

Every writer goes through one :class:`OutputGuard`::

    guard = OutputGuard(ledger=ledger, inputs=[model, data], overwrite=overwrite)
    out = guard.claim_dir(out, writes=["best", "candidates.json"])  # before any heavy work
    ...                                      # write into out
    guard.remove(out / "best")               # only what frugal wrote (else BadInput)
    guard.mark_written(out)                  # list what is there now

A claim or removal raises :class:`~frugalml.errors.BadInput` (one line, exit 2) when the path
is the ledger or one of the command's inputs (compared by inode, so ``..``, symlinks and hard
links do not slip through), is a file where a folder is wanted (or the reverse), or holds
files frugal did not write. ``overwrite=True`` (``--overwrite``) lets frugal write where such
files are, replacing those with the same names; it still never deletes a file it did not
write, the ledger, or an input.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from frugalml.errors import BadInput

MANIFEST = ".frugal-written.json"
OVERWRITE_HELP = (
    "Write even where files frugal did not write are in the way, replacing those with the "
    "same names (frugal still never deletes them, the ledger or its input)."
)
_ALL = "*"  # manifest entry: frugal owns everything in this folder until the write ends
_LEDGER_SUFFIXES = ("", "-wal", "-shm", "-journal", ".lock")


def _abs(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.abspath(Path(path).expanduser()))


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _ledger_path(ledger: Any) -> Path | None:
    """The SQLite file behind a ledger URL, a bare path or a ``Ledger`` (None for a server)."""
    from frugalml.settings import ledger_url

    url = getattr(ledger, "url", ledger)
    try:
        url = ledger_url(str(url) if url is not None else None)
    except Exception:  # a config file frugal cannot read: the command reports it later
        return None
    if not url.startswith("sqlite:"):
        return None
    rest = url.split(":", 1)[1]
    if not rest.startswith("///"):
        return None
    db = rest[3:].split("?", 1)[0]
    return _abs(db) if db and db != ":memory:" else None


def _fingerprint(path: Path) -> dict[str, Any]:
    st = path.lstat()
    if stat.S_ISDIR(st.st_mode):
        return {"kind": "dir"}
    kind = "link" if stat.S_ISLNK(st.st_mode) else "file"
    return {"kind": kind, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _pending(entry: Any) -> bool:
    return isinstance(entry, dict) and entry.get("kind") == "pending"


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    entries = doc.get("written") if isinstance(doc, dict) else None
    return entries if isinstance(entries, dict) else None


def _write_manifest(folder: Path, entries: dict[str, Any]) -> None:
    doc = {
        "frugal_written": 1,
        "about": "files and folders frugal wrote here; frugal replaces or deletes only these",
        "written": dict(sorted(entries.items())),
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{MANIFEST}.", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(doc, indent=2) + "\n")
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, folder / MANIFEST)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _walk(path: Path) -> Iterator[Path]:
    """``path`` and everything under it (symlinks not followed), children before parents."""
    if path.is_dir() and not path.is_symlink():
        for child in sorted(path.iterdir()):
            yield from _walk(child)
    yield path


def _same(a: Path, b: Path) -> bool:
    try:
        return _real(a) == _real(b) or os.path.samefile(a, b)
    except OSError:
        return False


def _within(path: Path, folder: Path) -> bool:
    """``path`` is ``folder`` or lies under it (by real path)."""
    p, f = _real(path), _real(folder)
    return p == f or f in p.parents


class OutputGuard:
    """Checks and records every path one command writes; see the module docstring.

    ``ledger``: the ledger URL, bare path or ``Ledger`` the command uses (None: the default
    one). ``inputs``: what the command reads (model folders, data files; anything that is not
    an existing path, like a model name or a run id, is ignored). ``overwrite``: the user's
    ``--overwrite``.
    """

    def __init__(
        self,
        *,
        ledger: Any = None,
        inputs: Iterable[Any] = (),
        overwrite: bool = False,
    ) -> None:
        self.overwrite = overwrite
        base = _ledger_path(ledger)
        self._ledger = [Path(f"{base}{s}") for s in _LEDGER_SUFFIXES] if base else []
        self._inputs: list[Path] = []
        for item in inputs:
            item = getattr(item, "source", item)
            if isinstance(item, str | os.PathLike):
                with contextlib.suppress(OSError, ValueError):
                    p = _abs(item)
                    if p.exists():
                        self._inputs.append(p)
        self._claimed: dict[Path, str] = {}  # path -> the option that named it
        self._foreign: dict[Path, dict[str, Any]] = {}  # claimed folder -> foreign entries
        self._cache: dict[Path, dict[str, Any] | None] = {}

    # ---- what may never be written ------------------------------------------------------
    def _protected(self, path: Path, option: str, *, containing: bool) -> None:
        """BadInput if ``path`` is the ledger or an input (or, ``containing``, holds one)."""
        for led in self._ledger:
            if _same(path, led) or (containing and _within(led, path)):  # even before it exists
                what = "is" if _same(path, led) else "holds"
                raise BadInput(
                    f"{option} {path} {what} the ledger ({self._ledger[0].name}); frugal never "
                    "writes over the ledger",
                    hint=f"give {option} another path",
                )
        for inp in self._inputs:
            if _same(path, inp) or (containing and _within(inp, path)):
                what = "is" if _same(path, inp) else "holds"
                raise BadInput(
                    f"{option} {path} {what} this command's input {inp}; frugal never writes "
                    "over its input",
                    hint=f"give {option} another path",
                )

    def _check_new(self, path: Path, option: str) -> None:
        for other, opt in self._claimed.items():
            if (_same(path, other) or path == other) and opt != option:
                raise BadInput(
                    f"{option} {path} is the same path as {opt}",
                    hint="give each output its own path",
                )

    # ---- ownership ----------------------------------------------------------------------
    def _manifest(self, folder: Path) -> dict[str, Any] | None:
        if folder not in self._cache:
            self._cache[folder] = _read_manifest(folder)
        return self._cache[folder]

    def owned(self, path: str | os.PathLike[str]) -> bool:
        """Whether frugal provably wrote ``path`` (and it is neither the ledger nor an input)."""
        p = _abs(path)
        return not any(_same(p, x) for x in (*self._ledger, *self._inputs)) and self._listed(p)

    def _listed(self, p: Path) -> bool:
        """Whether a manifest lists ``p`` as frugal's (its folder's own, or one above it)."""
        if not os.path.lexists(p):
            return False
        if p.is_dir() and not p.is_symlink() and (p / MANIFEST).is_file():
            return True  # a folder frugal created carries its manifest
        for folder in p.parents:
            entries = self._manifest(folder)
            if not entries:
                continue
            rel = p.relative_to(folder).as_posix()
            parts = rel.split("/")
            if (
                _ALL in entries
                or any(  # being written now (or when a write was cut short)
                    _pending(entries.get("/".join(parts[:i]))) for i in range(1, len(parts) + 1)
                )
            ):
                return True
            if rel in entries:
                return bool(entries[rel] == _fingerprint(p))
        return False

    def _foreign_under(self, folder: Path, limit: int = 3) -> list[str]:
        found: list[str] = []
        for p in _walk(folder):
            if p == folder or p.name == MANIFEST or p in self._ledger:
                continue  # the ledger may live in the output folder: neither ours nor in the way
            if p.is_dir() and not p.is_symlink() and any(True for _ in p.iterdir()):
                continue  # a folder with contents: its files decide
            if not self._listed(p):  # (an input frugal wrote, like demo data, is not foreign)
                found.append(p.relative_to(folder).as_posix())
                if len(found) >= limit:
                    break
        return found

    # ---- claims -------------------------------------------------------------------------
    def claim_file(self, path: str | os.PathLike[str], *, option: str = "--out") -> Path:
        """Check ``path`` may be written as one file (the writer makes its folder). Absolute.

        Refused: the ledger, an input, another output of this command, a folder, or an
        existing file frugal did not write (unless ``overwrite``).
        """
        p = _abs(path)
        self._protected(p, option, containing=False)
        self._check_new(p, option)
        if p.is_dir():
            raise BadInput(f"{option} {p} is a folder", hint=f"give {option} a file path")
        if os.path.lexists(p) and not self.overwrite and not self.owned(p):
            raise BadInput(
                f"{option} {p} exists and frugal did not write it",
                hint=f"give {option} another path, or pass --overwrite to replace it",
            )
        self._claimed[p] = option
        return p

    def claim_dir(
        self,
        path: str | os.PathLike[str],
        *,
        option: str = "--out",
        writes: Iterable[str] | None = None,
    ) -> Path:
        """Check ``path`` may be frugal's output folder; create it and its manifest.

        ``writes``: the names the command will write in it (checked now against the ledger
        and the inputs); None: any. The folder must be new, empty or hold only what frugal
        wrote (unless ``overwrite``). Returns the path, absolute.
        """
        p = _abs(path)
        self._protected(p, option, containing=False)
        self._check_new(p, option)
        if os.path.lexists(p) and not p.is_dir():
            raise BadInput(
                f"{option} {p} is a file, not a folder", hint=f"give {option} a folder path"
            )
        for name in writes or ():
            self._protected(p / name, option, containing=True)
        foreign = self._foreign_under(p) if p.is_dir() else []
        if foreign and not self.overwrite:
            raise BadInput(
                f"{option} {p} holds files frugal did not write ({', '.join(foreign)}"
                f"{', ...' if len(foreign) >= 3 else ''})",
                hint=f"give {option} a new or empty folder, or pass --overwrite to write there",
            )
        self._mkdir(p, option)
        entries = dict(self._manifest(p) or {})
        if self.overwrite and foreign:
            self._foreign[p] = {
                q.relative_to(p).as_posix(): _fingerprint(q)
                for q in _walk(p)
                if q != p and q.name != MANIFEST and not self._listed(q)
            }
        if writes is None:
            if not foreign:  # (the ledger and the inputs are never frugal's: see ``owned``)
                entries[_ALL] = {"kind": "pending"}
        else:
            theirs = self._foreign.get(p, {})
            for name in writes:  # frugal's, or new: declared before writing
                if not any(k == name or k.startswith(name + "/") for k in theirs):
                    entries[name] = {"kind": "pending"}
        self._save(p, entries)
        self._claimed[p] = option
        return p

    def _mkdir(self, folder: Path, option: str) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise BadInput(
                f"cannot create the folder {folder} for {option}: {e.strerror or e}",
                hint=f"give {option} a path whose parent folders are folders you can write",
            ) from e

    def _save(self, folder: Path, entries: dict[str, Any]) -> None:
        try:
            _write_manifest(folder, entries)
        except OSError as e:
            raise BadInput(
                f"cannot write in {folder}: {e.strerror or e}", hint="give a writable path"
            ) from e
        self._cache[folder] = entries

    # ---- after writing ------------------------------------------------------------------
    def mark_written(self, path: str | os.PathLike[str]) -> None:
        """Record ``path`` (a file, or a folder and what is in it) as written by frugal.

        A folder claimed with :meth:`claim_dir` lists its contents in its own manifest
        (everything but the files that were not frugal's and are unchanged); any other path
        is listed in the manifest of the folder it lies in.
        """
        p = _abs(path)
        if p in self._claimed and p.is_dir():
            folder, roots = p, [q for q in p.iterdir() if q.name != MANIFEST]
            entries: dict[str, Any] = {}
        else:
            folder, roots = p.parent, [p]
            entries = dict(self._manifest(folder) or {})
            for key in [k for k in entries if k == p.name or k.startswith(p.name + "/")]:
                del entries[key]
        skip = self._foreign.get(folder, {})
        protected = [x for x in self._ledger if x.exists()]  # a ledger made here stays the user's
        for root in roots:
            for q in _walk(root):
                rel = q.relative_to(folder).as_posix()
                if any(_same(q, x) for x in protected):
                    continue
                fp = _fingerprint(q)
                if skip.get(rel) == fp:
                    continue
                if fp["kind"] == "dir" and rel in skip:
                    continue
                entries[rel] = fp
        self._cache.pop(folder, None)
        try:
            self._save(folder, entries)
        except BadInput as e:  # the output is written; only the next run's check is stricter
            sys.stderr.write(f"frugal: warning: {e.message}: {MANIFEST} not updated\n")

    def remove(self, path: str | os.PathLike[str]) -> None:
        """Delete ``path`` (file or folder) if frugal wrote it, and nothing else.

        Refused (BadInput): the ledger or an input, or anything under ``path`` frugal did not
        write — with ``overwrite`` those are left in place instead and the rest is deleted.
        """
        p = _abs(path)
        if not os.path.lexists(p):
            return
        self._protected(p, "frugal", containing=True)
        foreign = [q for q in _walk(p) if q.name != MANIFEST and not self.owned(q)]
        foreign_files = [  # files, and folders with nothing in them
            q for q in foreign if not q.is_dir() or q.is_symlink() or not any(q.iterdir())
        ]
        if foreign_files and not self.overwrite:
            shown = ", ".join(str(q) for q in foreign_files[:3])
            raise BadInput(
                f"frugal would have to delete files it did not write: {shown}"
                f"{', ...' if len(foreign_files) > 3 else ''}",
                hint="move them away, give --out another path, or pass --overwrite to keep "
                "them and write beside them",
            )
        keep = set(foreign_files)
        for q in foreign_files:
            keep.update(q.parents)
        for q in _walk(p):
            if q in keep:
                continue
            with contextlib.suppress(OSError):
                if q.is_dir() and not q.is_symlink():
                    with contextlib.suppress(FileNotFoundError):
                        (q / MANIFEST).unlink()
                    q.rmdir()
                else:
                    q.unlink()
        self._forget(p)

    def _forget(self, p: Path) -> None:
        """Drop ``p`` and what was under it from the manifests above it."""
        for folder in p.parents:
            entries = self._manifest(folder)
            if not entries:
                continue
            rel = p.relative_to(folder).as_posix()
            gone = [k for k in entries if k == rel or k.startswith(rel + "/")]
            if gone and not os.path.lexists(p):
                self._save(folder, {k: v for k, v in entries.items() if k not in gone})


def remove_written(path: str | os.PathLike[str]) -> None:
    """Delete what frugal wrote at ``path`` and leave anything else where it is (no error)."""
    OutputGuard(overwrite=True).remove(path)


__all__ = ["MANIFEST", "OVERWRITE_HELP", "OutputGuard", "remove_written"]
