"""Tests of cryolab.data: manifest coverage and copies, fetching from a mirror, fetch errors."""

from __future__ import annotations

import csv
import gzip
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pooch
import pytest
import requests

from cryolab import data
from cryolab.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[1]
SMALL_FILE = "structures/gemmi/4hhh_frag.pdb.gz"  # 1.9 kB
OFFICIAL_FILE = "maps/emd_3488.map.gz"  # from a PyPI source archive; also an EMDB entry
GIT_FILE = "structures/bm5/1A2K_target.pdb.gz"  # from haddocking/BM5-clean at a commit


def _find_mirror() -> Path | None:
    """The real-data mirror: $CRYOLAB_DATA_DIR, else ../shared/data next to the repository."""
    candidates = [REPO.parent / "shared" / "data"]
    if os.environ.get(data.ENV_VAR):
        candidates.insert(0, Path(os.environ[data.ENV_VAR]))
    return next((c.resolve() for c in candidates if (c / "SOURCES.tsv").is_file()), None)


MIRROR = _find_mirror()
needs_mirror = pytest.mark.skipif(
    MIRROR is None,
    reason="real-data mirror not found: no SOURCES.tsv in $CRYOLAB_DATA_DIR or in ../shared/data "
    "next to the repository",
)


@needs_mirror
def test_manifest_covers_every_mirror_file() -> None:
    with (MIRROR / "SOURCES.tsv").open(newline="", encoding="utf-8") as fh:
        listed = {row["path"] for row in csv.DictReader(fh, delimiter="\t")}
    listed |= {p.relative_to(MIRROR).as_posix() for p in (MIRROR / "lists").glob("*.csv")}
    assert listed == set(data.registry())
    assert listed == set(data.entries()["name"])


def test_package_copies_equal_data_manifest() -> None:
    for name in ("registry.tsv", "catalogue.csv"):
        source = (REPO / "data_manifest" / name).read_bytes()
        assert (REPO / "cryolab" / "_manifest" / name).read_bytes() == source, name


def test_every_entry_has_a_public_source() -> None:
    sha = re.compile(r"[0-9a-f]{64}")
    for name, e in data.registry().items():
        assert sha.fullmatch(e.sha256) and sha.fullmatch(e.upstream_sha256), name
        assert e.stored in {"as-is", "gzip", "derived"}, name
        assert re.match(
            r"https://raw\.githubusercontent\.com/[^/]+/[^/]+/[0-9a-f]{40}/|pypi:[^=]+==[^!]+!|package:",
            e.upstream,
        ), name
        assert e.upstream.startswith("pypi:") == bool(sha.fullmatch(e.sdist_sha256)), name
        assert (e.stored == "derived") == bool(e.recipe and sha.fullmatch(e.content_sha256)), name
        assert e.derived_from in {"", *data.registry()}, name
        assert e.archive_url == "" or e.archive_url.startswith(
            ("https://files.rcsb.org/download/", "https://ftp.ebi.ac.uk/pub/databases/emdb/")
        ), name
        if e.stored == "as-is":  # the upstream bytes are the registered file
            assert e.upstream_sha256 == e.sha256, name
    assert data.registry()[OFFICIAL_FILE].archive_url.startswith("https://ftp.ebi.ac.uk/")
    assert data.registry()[GIT_FILE].archive_url == ""  # renumbered: not the PDB entry


def test_package_files_ship_with_the_package() -> None:
    for name, e in data.registry().items():
        if e.upstream.startswith(data.PACKAGE_SCHEME):
            shipped = REPO / "cryolab" / "_manifest" / e.upstream.removeprefix(data.PACKAGE_SCHEME)
            assert data.sha256_file(shipped) == e.sha256 == e.upstream_sha256, name


@needs_mirror
def test_registry_sources_equal_upstream_tsv() -> None:
    with (MIRROR / "UPSTREAM.tsv").open(newline="", encoding="utf-8") as fh:
        upstream = list(csv.DictReader(fh, delimiter="\t"))
    with (MIRROR / "SOURCES.tsv").open(newline="", encoding="utf-8") as fh:
        sources = {row["path"]: row for row in csv.DictReader(fh, delimiter="\t")}
    assert {row["path"] for row in upstream} == set(sources)
    registry = data.registry()
    for row in upstream:
        e = registry[row["path"]]
        assert e.sha256 == sources[row["path"]]["sha256"]
        assert (e.upstream, e.upstream_sha256) == (row["upstream_url"], row["upstream_sha256"])
        if row["matches_mirror"] == "derived":
            assert e.stored == "derived"
        else:
            assert e.stored == {"gzip": "as-is", "none": "gzip"}[row["upstream_compression"]]
        if e.sdist_sha256:
            assert f"sha256={e.sdist_sha256}" in row["note"]
    assert sum(e.upstream.startswith(data.PACKAGE_SCHEME) for e in registry.values()) == 2


@needs_mirror
def test_package_lists_are_the_mirror_lists() -> None:
    for path in (MIRROR / "lists").glob("*.csv"):
        shipped = REPO / "cryolab" / "_manifest" / "lists" / path.name
        assert shipped.read_bytes() == path.read_bytes()


@needs_mirror
def test_derived_files_are_remade_byte_for_byte(tmp_path: Path) -> None:
    """A crop (from the mirror's full map) and a TIFF rewritten as MRC come out as the mirror's
    files; the registered sha256 is checked, not only the content."""
    for name in ("maps/emd_0093_masked_crop.map.gz", "tomograms/cylindra_14pf_MT.mrc.gz"):
        entry = data.registry()[name]
        target = tmp_path / "derived.gz"
        data._derive(entry, target, progress=False)
        assert data.sha256_file(target) == entry.sha256, name


@needs_mirror
def test_cache_gzip_reproduces_the_mirror_or_its_content() -> None:
    """What the cache stores for a gzipped upstream file: Python's gzip at level 9 without a
    time stamp gives the mirror's bytes for files the mirror gzipped with zlib; the files gzipped
    by GNU gzip (e.g. 7cec.cif.gz) differ in bytes and pass by their content."""
    for name, identical in (
        ("structures/gemmi/4hhh_frag.pdb.gz", True),
        ("structures/bm5/1A2K_target.pdb.gz", True),
        ("structures/mapq/7cec.cif.gz", False),
    ):
        entry = data.registry()[name]
        assert entry.stored == "gzip"
        content = gzip.decompress((MIRROR / name).read_bytes())
        ours = gzip.compress(content, 9, mtime=0)
        assert (hashlib.sha256(ours).hexdigest() == entry.sha256) is identical, name
        assert hashlib.sha256(content).hexdigest() == entry.content


def test_imports_without_torch() -> None:
    code = "import sys, cryolab.data; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


@needs_mirror
def test_fetch_returns_the_mirror_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(data.ENV_VAR, str(MIRROR))
    path = data.fetch(OFFICIAL_FILE)
    assert path == MIRROR / OFFICIAL_FILE
    # The verified hash is remembered: a second fetch does not hash the file again.
    monkeypatch.setattr(data, "sha256_file", lambda p: pytest.fail(f"{p} hashed twice"))
    assert data.fetch(OFFICIAL_FILE) == path


@needs_mirror
def test_fetch_rejects_a_corrupt_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    copy = tmp_path / SMALL_FILE
    copy.parent.mkdir(parents=True)
    shutil.copyfile(MIRROR / SMALL_FILE, copy)
    raw = bytearray(copy.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    copy.write_bytes(raw)
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path))
    with pytest.raises(DataError, match=r"4hhh_frag\.pdb\.gz") as err:
        data.fetch(SMALL_FILE)
    assert data.registry()[SMALL_FILE].sha256 in str(err.value)
    assert "repair the mirror" in str(err.value)


def _refuse_network(*args: object, **kwargs: object) -> None:
    raise requests.ConnectionError("network is unreachable (test)")


def test_fetch_offline_says_how_to_use_a_mirror(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(data.URL_VAR, raising=False)
    monkeypatch.setattr(requests, "get", _refuse_network)
    monkeypatch.setattr(data, "RETRY_WAIT", 0.0)
    with pytest.raises(DataError, match=r"cannot get structures/gemmi/4hhh_frag\.pdb\.gz") as err:
        data.fetch(SMALL_FILE)
    assert data.registry()[SMALL_FILE].upstream in str(err.value)
    assert "ConnectionError" in str(err.value)
    assert data.URL_VAR in str(err.value) and data.ENV_VAR in str(err.value)
    assert sorted(tmp_path.iterdir()) == []  # no cache folder left behind


def test_fetch_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(DataError, match=r"maps/emd_3488\.map\.gz.*entries\(\)"):
        data.fetch("maps/emd_3489.map.gz")
    with pytest.raises(DataError, match=r"did you mean maps/emd_3488\.map\.gz"):
        data.fetch("emd_3488.map.gz")


def test_cache_dir_is_the_user_cache() -> None:
    assert data.cache_dir() == Path(pooch.os_cache("cryolab"))


def test_mirror_dir_is_optional(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    assert data.mirror_dir() is None


def test_find_xray_at_2_angstrom_or_better() -> None:
    found = data.find(kind="structure", method="X-ray", max_resolution=2.0)
    assert len(found) == 61  # the mirror's README: 61 X-ray entries at <= 2.0 A
    assert (found["resolution_A"] <= 2.0).all()
    assert (found["method"] == "X-ray").all()


def test_find_rejects_unknown_options() -> None:
    with pytest.raises(ConfigError, match="structure"):
        data.find(kind="structures")
    with pytest.raises(ConfigError):
        data.find(min_resolution=3.0, max_resolution=2.0)


def test_pairs() -> None:
    fitted = data.pairs()
    assert {"map", "model", "resolution_A", "fitted"} <= set(fitted.columns)
    as_tuples = set(zip(fitted["map"], fitted["model"], strict=True))
    assert ("maps/emd_3488.map.gz", "structures/ccpem/5me2.pdb.gz") in as_tuples
    assert "maps/emd_1997.map.gz" not in set(fitted["map"])
    everything = data.pairs(fitted_only=False)
    groel = everything[everything["map"] == "maps/emd_1997.map.gz"]
    assert groel["model"].tolist() == ["structures/powerfit/1oel.pdb.gz"]
    assert not groel["fitted"].any()


def test_id_lists_come_from_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    name = "lists/struc2mapgan_val_pairs.csv"
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "empty"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(data.URL_VAR, raising=False)
    got = data.retrieve(name)
    assert got.source == f"{data.PACKAGE_SCHEME}{name}"
    assert got.path == tmp_path / "cache" / "cryolab" / name
    with got.path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 15 and set(rows[0]) == {"EMID", "PDBID", "Resolution"}
