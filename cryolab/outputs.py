"""Where cryolab writes: one policy for every output file and folder.

- An existing output is replaced only when asked (``--overwrite``), and a folder only when
  cryolab wrote it (it holds the :data:`MARKER` file) or it is empty: a folder cryolab did not
  create is never deleted, nor the working directory or a folder that holds an input.
- An output never replaces one of the command's inputs.
- Whether the output can be written is checked before any work starts (:func:`check_file`,
  :func:`check_folder`), with one line naming the path: a read-only file system, a missing
  permission, a parent that is a file, a file name that is a folder.
- Everything is written under a temporary name beside the target and renamed into place when
  complete (:func:`atomic_file`, :func:`atomic_folder`), so an error or Ctrl-C leaves nothing
  behind, and a folder output never mixes files of two runs. Files and folders get the modes
  the user's umask gives new files (the temporary file's private mode does not survive).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import ConfigError

__all__ = [
    "MARKER",
    "add_overwrite_option",
    "check_file",
    "check_folder",
    "atomic_file",
    "atomic_folder",
]

#: The file that marks a folder as written by cryolab (so ``--overwrite`` may replace it).
MARKER = ".cryolab-output"

PathLike = str | os.PathLike


def add_overwrite_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--overwrite`` to a command that writes."""
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing output (only one cryolab wrote)")


def _umask() -> int:
    """The process umask: read from /proc where it exists (setting it, the only portable way
    to read it, would change it for other threads for a moment)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _existing_ancestor(path: Path) -> Path:
    """The nearest ancestor of ``path`` that exists (``path``'s parent, or higher up)."""
    for parent in path.absolute().parents:
        if parent.exists():
            return parent
    return Path(path.absolute().anchor)


def _check_writable(path: Path, option: str) -> None:
    """:class:`ConfigError` unless the folder that will hold ``path`` can be written."""
    where = _existing_ancestor(path)
    if not where.is_dir():
        raise ConfigError(f"{option} {path}: {where} is a file, not a folder")
    if not os.access(where, os.W_OK | os.X_OK):
        if os.statvfs(where).f_flag & os.ST_RDONLY:
            raise ConfigError(f"{option} {path}: {where} is on a read-only file system")
        raise ConfigError(f"{option} {path}: no permission to write in {where}")


def _may_replace(path: Path, option: str, overwrite: bool) -> Path:
    """:class:`ConfigError` if ``path`` exists and ``overwrite`` is off, or cannot be written."""
    if path.exists() and not overwrite:
        raise ConfigError(f"{option} {path}: already exists; pass --overwrite to replace it")
    _check_writable(path, option)
    return path


def _is_within(inner: Path, outer: Path) -> bool:
    inner, outer = inner.resolve(), outer.resolve()
    return inner == outer or outer in inner.parents


def _present(inputs: Iterable[PathLike | None]) -> list[Path]:
    return [Path(s) for s in inputs if s is not None and Path(s).exists()]


def check_file(path: PathLike, *, option: str = "--out", inputs: Iterable[PathLike | None] = (),
               overwrite: bool = False) -> Path:
    """Check, before any work, that the output file ``path`` may be written: it is not a
    folder, not one of ``inputs``, does not exist (unless ``overwrite``), and its folder is
    writable. Returns ``path`` as a :class:`Path`."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{option} {path}: is a folder; give a file name")
    for source in _present(inputs):
        if path.exists() and path.samefile(source):
            raise ConfigError(f"{option} {path}: is an input of this command; choose another "
                              "name")
    return _may_replace(path, option, overwrite)


def _replaceable(path: Path) -> bool:
    """A folder cryolab may replace: empty, or holding the :data:`MARKER`."""
    return (path / MARKER).is_file() or not any(path.iterdir())


def check_folder(path: PathLike, *, option: str = "--out", inputs: Iterable[PathLike | None] = (),
                 overwrite: bool = False) -> Path:
    """Check, before any work, that the output folder ``path`` may be written: it is not a
    file, not the working directory or one holding it, holds none of ``inputs``, is new or
    (with ``overwrite``) empty or an earlier cryolab output, and its parent is writable."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path}: is a file; give a folder name")
    if _is_within(Path.cwd(), path):
        raise ConfigError(f"{option} {path}: is the working directory or holds it; choose a "
                          "new folder")
    for source in _present(inputs):
        if _is_within(source, path):
            raise ConfigError(f"{option} {path}: holds the input {source}; choose a new folder")
    if path.is_dir() and not _replaceable(path):
        raise ConfigError(f"{option} {path}: holds files cryolab did not write; choose a new "
                          "folder (it is never replaced)")
    return _may_replace(path, option, overwrite)


@contextlib.contextmanager
def atomic_file(path: PathLike) -> Iterator[Path]:
    """Yield a temporary file name beside ``path``; when the block ends normally, give it the
    umask's mode and rename it to ``path`` (creating missing folders); on any error or
    interrupt, delete it."""
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=_existing_ancestor(path), prefix=f".{path.name}.",
                                suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.filename != str(tmp):
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from None  # name the target
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_folder(path: PathLike, written_by: str = "cryolab") -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; when the block ends normally, mark it as
    cryolab's (:data:`MARKER`, holding ``written_by``), give it the umask's mode and put it in
    place of ``path``: an earlier cryolab output there is replaced as a whole, an empty folder
    of the user's is kept and filled. On any error or interrupt, delete the temporary folder
    and leave ``path`` as it was."""
    path = Path(path)
    tmp = Path(tempfile.mkdtemp(dir=_existing_ancestor(path), prefix=f".{path.name}.",
                                suffix=".tmp"))
    try:
        yield tmp
        (tmp / MARKER).write_text(f"written by {written_by}\n")
        os.chmod(tmp, 0o777 & ~_umask())
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir() and (path / MARKER).is_file():  # an earlier cryolab run: replace it
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.",
                                        suffix=".old"))
            os.replace(path, old / "previous")
            os.replace(tmp, path)
            shutil.rmtree(old)
        elif path.is_dir():  # the user's folder: kept, and filled only if still empty
            if any(path.iterdir()):
                raise ConfigError(f"{path}: holds files cryolab did not write; not replaced")
            for item in tmp.iterdir():
                os.replace(item, path / item.name)
            tmp.rmdir()
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
