"""Tests of fetching without the mirror: a loopback HTTP server serves a small upstream and an
HTTP mirror, and a small registry (monkeypatched in) names their files. No internet is needed,
except for the one test that fetches a real ``pypi:`` member through pip (skipped offline)."""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import MappingProxyType

import mrcfile
import numpy as np
import pytest
import tifffile

from cryolab import cli, data
from cryolab.errors import DataError

PDB = b"ATOM      1  CA  GLY A   1      11.104   6.134  -6.504  1.00  0.00           C\nEND\n"
CROP = "crop x2:6 y1:5 z3:7"  # x, y, z voxel ranges
VOXEL = 1.5  # Å


class _Handler(SimpleHTTPRequestHandler):
    """Serves a folder; logs every path asked for; cuts the files in ``server.truncate``
    after half their bytes (the length header still announces them whole)."""

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        if self.path in self.server.truncate:
            body = Path(self.directory, self.path.lstrip("/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


@dataclass
class Site:
    """The loopback server, the folder it serves, and the small registry over it."""

    root: Path
    base: str
    server: ThreadingHTTPServer
    cache: Path
    full_zyx: np.ndarray
    stack: np.ndarray

    @property
    def requests(self) -> list[str]:
        return self.server.requests


def _sha(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _entry(**fields: str) -> data.RegistryEntry:
    return data.RegistryEntry(**{f: fields.get(f, "") for f in data.RegistryEntry._fields})


def _full_map(path: Path) -> np.ndarray:
    """A 9x8x10 (z, y, x) map written with the axis order MAPC/MAPR/MAPS = 3, 2, 1 (as
    EMD-11007 upstream); returns the data in z, y, x order."""
    zyx = np.arange(9 * 8 * 10, dtype=np.float32).reshape(9, 8, 10)
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.ascontiguousarray(zyx.transpose(2, 1, 0)))  # sections x, rows y, cols z
        mrc.header.mapc, mrc.header.mapr, mrc.header.maps = 3, 2, 1
        mrc.voxel_size = VOXEL
        mrc.header.origin = (10.0, 20.0, 30.0)
    return zyx


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    root = tmp_path / "www"
    (root / "upstream").mkdir(parents=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(root)))
    server.requests, server.truncate = [], set()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"

    (root / "upstream" / "tiny.pdb").write_bytes(PDB)
    work = tmp_path / "work"
    work.mkdir()
    zyx = _full_map(work / "full.mrc")
    full_gz = gzip.compress((work / "full.mrc").read_bytes())
    (root / "upstream" / "full.map.gz").write_bytes(full_gz)
    data.crop_map(
        work / "full.mrc", work / "crop.mrc", (slice(2, 6), slice(1, 5), slice(3, 7)), "t"
    )
    crop = (work / "crop.mrc").read_bytes()
    stack = np.random.default_rng(0).integers(0, 255, (4, 6, 5), dtype=np.uint8)
    tifffile.imwrite(root / "upstream" / "stack.tif", stack, photometric="minisblack")
    tif = (root / "upstream" / "stack.tif").read_bytes()
    data.tiff_to_mrc(root / "upstream" / "stack.tif", work / "stack.mrc", 6, 10.52, "t")
    stack_mrc = (work / "stack.mrc").read_bytes()

    def gz(raw: bytes) -> str:
        return _sha(gzip.compress(raw, 9, mtime=0))

    entries = {
        "structures/tiny.pdb.gz": _entry(
            sha256=gz(PDB), stored="gzip", upstream=f"{base}/upstream/tiny.pdb",
            upstream_sha256=_sha(PDB),
        ),
        "maps/full.map.gz": _entry(
            sha256=_sha(full_gz), stored="as-is", upstream=f"{base}/upstream/full.map.gz",
            upstream_sha256=_sha(full_gz),
        ),
        "maps/full_crop.map.gz": _entry(
            sha256=gz(crop), stored="derived", upstream=f"{base}/upstream/full.map.gz",
            upstream_sha256=_sha(full_gz), derived_from="maps/full.map.gz", recipe=CROP,
            mrc_label="t", content_sha256=_sha(crop),
        ),
        "tomograms/stack.tif.gz": _entry(
            sha256=gz(tif), stored="gzip", upstream=f"{base}/upstream/stack.tif",
            upstream_sha256=_sha(tif),
        ),
        "tomograms/stack.mrc.gz": _entry(
            sha256=gz(stack_mrc), stored="derived", upstream=f"{base}/upstream/stack.tif",
            upstream_sha256=_sha(tif), derived_from="tomograms/stack.tif.gz",
            recipe="tiff-to-mrc mode 6 voxel 10.52", mrc_label="t",
            content_sha256=_sha(stack_mrc),
        ),
    }  # fmt: skip
    monkeypatch.setattr(data, "registry", lambda: MappingProxyType(entries))
    monkeypatch.setattr(data, "RETRY_WAIT", 0.0)
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "empty"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(data.URL_VAR, raising=False)
    yield Site(root, base, server, tmp_path / "xdg" / "cryolab", zyx, stack)
    server.shutdown()
    server.server_close()


def _everything_under(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*")) if folder.exists() else []


def test_download_verifies_and_stores_the_registered_form(site: Site) -> None:
    got = data.retrieve("structures/tiny.pdb.gz")
    assert got.path == site.cache / "structures/tiny.pdb.gz"
    assert got.source == f"{site.base}/upstream/tiny.pdb"
    assert gzip.decompress(got.path.read_bytes()) == PDB
    assert data.sha256_file(got.path) == data.registry()["structures/tiny.pdb.gz"].sha256
    # Present now: checked, not downloaded again.
    assert data.retrieve("structures/tiny.pdb.gz") == (got.path, "cache")
    assert site.requests == ["/upstream/tiny.pdb"]


def test_data_url_is_tried_first(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    mirror = site.root / "mirror" / "structures"
    mirror.mkdir(parents=True)
    (mirror / "tiny.pdb.gz").write_bytes(gzip.compress(PDB, 9, mtime=0))
    monkeypatch.setenv(data.URL_VAR, f"{site.base}/mirror/")
    got = data.retrieve("structures/tiny.pdb.gz")
    assert got.source == f"{site.base}/mirror/structures/tiny.pdb.gz"
    assert site.requests == ["/mirror/structures/tiny.pdb.gz"]  # upstream never asked


def test_data_url_without_the_file_falls_back_to_upstream(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(data.URL_VAR, f"{site.base}/mirror")
    got = data.retrieve("structures/tiny.pdb.gz")
    assert got.source == f"{site.base}/upstream/tiny.pdb"
    assert site.requests == ["/mirror/structures/tiny.pdb.gz", "/upstream/tiny.pdb"]


def test_derived_crop_keeps_voxels_and_nstart(site: Site) -> None:
    got = data.retrieve("maps/full_crop.map.gz")
    assert got.source == f"{CROP} of maps/full.map.gz"
    assert (site.cache / "maps/full.map.gz").is_file()  # its source, fetched on the way
    with mrcfile.open(got.path) as mrc:
        np.testing.assert_array_equal(mrc.data, site.full_zyx[3:7, 1:5, 2:6])
        assert (mrc.header.mapc, mrc.header.mapr, mrc.header.maps) == (1, 2, 3)
        assert (mrc.header.nxstart, mrc.header.nystart, mrc.header.nzstart) == (2, 1, 3)
        assert mrc.voxel_size.tolist() == (VOXEL, VOXEL, VOXEL)
        assert mrc.header.origin.tolist() == (10.0, 20.0, 30.0)
        assert mrc.header.label[int(mrc.header.nlabl) - 1] == b"t"


def test_tiff_becomes_the_same_mrc(site: Site) -> None:
    path = data.fetch("tomograms/stack.mrc.gz")
    with mrcfile.open(path) as mrc:
        assert mrc.header.mode == 6
        np.testing.assert_array_equal(mrc.data, site.stack)
        assert mrc.voxel_size.tolist() == pytest.approx((10.52, 10.52, 10.52))


def test_changed_upstream_file_names_both_hashes(site: Site) -> None:
    (site.root / "upstream" / "tiny.pdb").write_bytes(PDB.replace(b"GLY", b"ALA"))
    with pytest.raises(DataError) as err:
        data.fetch("structures/tiny.pdb.gz")
    message = str(err.value)
    assert "\n" not in message
    assert f"{site.base}/upstream/tiny.pdb" in message
    assert _sha(PDB) in message
    assert _sha(PDB.replace(b"GLY", b"ALA")) in message
    assert _everything_under(site.cache.parent) == []  # no file, no folder left


def test_interrupted_download_leaves_nothing_and_resumes(site: Site) -> None:
    site.server.truncate.add("/upstream/full.map.gz")
    with pytest.raises(DataError, match=r"cannot get maps/full\.map\.gz"):
        data.fetch("maps/full.map.gz")
    assert site.requests == ["/upstream/full.map.gz"] * data.RETRIES
    assert _everything_under(site.cache.parent) == []
    site.server.truncate.clear()
    assert data.retrieve("maps/full.map.gz").source == f"{site.base}/upstream/full.map.gz"


def test_offline_error_says_what_was_tried(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(data.URL_VAR, f"{site.base}/mirror")
    site.server.shutdown()
    site.server.server_close()
    with pytest.raises(DataError) as err:
        data.fetch("structures/tiny.pdb.gz")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("cannot get structures/tiny.pdb.gz: tried ")
    assert f"{site.base}/mirror/structures/tiny.pdb.gz" in message
    assert f"{site.base}/upstream/tiny.pdb" in message
    assert data.URL_VAR in message and data.ENV_VAR in message
    assert _everything_under(site.cache.parent) == []


def test_missing_data_dir_is_reported_not_created(
    site: Site, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "no" / "such" / "mirror"
    monkeypatch.setenv(data.ENV_VAR, str(missing))
    with pytest.raises(DataError, match=f"{data.ENV_VAR}={missing} is not an existing folder"):
        data.fetch("structures/tiny.pdb.gz")
    assert not (tmp_path / "no").exists()
    assert site.requests == []


def test_cached_files_keep_the_umask(site: Site) -> None:
    old = os.umask(0o027)
    data._umask.cache_clear()
    try:
        path = data.fetch("structures/tiny.pdb.gz")
    finally:
        os.umask(old)
        data._umask.cache_clear()
    assert path.stat().st_mode & 0o777 == 0o640


def test_a_recompressed_gzip_passes_by_its_content(site: Site) -> None:
    entry = data.registry()["structures/tiny.pdb.gz"]
    other = site.cache / "other.pdb.gz"
    other.parent.mkdir(parents=True)
    other.write_bytes(gzip.compress(PDB, 1, mtime=123))  # other bytes, same content
    assert data.sha256_file(other) != entry.sha256
    assert data._verified(other, entry)
    other.write_bytes(gzip.compress(PDB + b"\n", 9, mtime=0))
    assert not data._verified(other, entry)


def test_cli_download_prints_where_each_file_came_from(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    names = ["maps/full_crop.map.gz", "structures/tiny.pdb.gz", "tomograms/stack.mrc.gz"]
    assert cli.main(["data", "download", "--jobs", "3", *names]) == 0
    out = capsys.readouterr().out
    assert f"structures/tiny.pdb.gz\t{site.base}/upstream/tiny.pdb" in out
    assert f"maps/full_crop.map.gz\t{CROP} of maps/full.map.gz" in out
    assert "3 of 3 files" in out
    assert all((site.cache / n).is_file() for n in names)
    assert cli.main(["data", "download", *names]) == 0  # resumes: everything is there
    assert "3 already in the cache" in capsys.readouterr().out


def test_cli_download_reports_failures_and_exits_non_zero(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    (site.root / "upstream" / "stack.tif").unlink()
    names = ["structures/tiny.pdb.gz", "tomograms/stack.tif.gz"]
    assert cli.main(["data", "download", *names]) == 2
    captured = capsys.readouterr()
    assert "failed: cannot get tomograms/stack.tif.gz" in captured.out
    assert "1 of 2 files could not be fetched" in captured.err
    assert (site.cache / "structures/tiny.pdb.gz").is_file()


PYPI_FILE = "structures/emmer/6NY1.pdb.gz"  # from emmer==0.1.2, a 3.6 MB source archive


def test_pypi_member_through_pip_for_real(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = data.registry()[PYPI_FILE]
    assert entry.upstream.startswith("pypi:emmer==0.1.2!")
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "empty"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(data.URL_VAR, raising=False)
    monkeypatch.setattr(data, "RETRY_WAIT", 0.0)
    try:
        got = data.retrieve(PYPI_FILE)
    except DataError as exc:
        if "pip download emmer==0.1.2 failed" in str(exc):
            pytest.skip(f"the package index is not reachable through pip: {exc}")
        raise
    assert got.source == entry.upstream
    assert _sha(gzip.decompress(got.path.read_bytes())) == entry.upstream_sha256
    assert data.sha256_file(got.path) == entry.sha256


def test_unwritable_cache_is_one_clear_error(
    site: Site, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "a_file").write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "a_file"))
    with pytest.raises(DataError, match="cannot create the cache folder .*a_file/cryolab"):
        data.fetch("structures/tiny.pdb.gz")
    assert site.requests == []
