"""Tests of cryolab.data: manifest coverage and copies, fetching from a mirror, fetch errors."""

from __future__ import annotations

import csv
import os
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
OFFICIAL_FILE = "maps/emd_3488.map.gz"
MIRROR_ONLY_FILE = "maps/emd_44046_crop.map.gz"


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
    for name in ("registry.txt", "catalogue.csv"):
        source = (REPO / "data_manifest" / name).read_bytes()
        assert (REPO / "cryolab" / "_manifest" / name).read_bytes() == source, name


def test_registry_is_a_valid_pooch_registry() -> None:
    loader = pooch.Pooch(path=Path(), base_url="")
    loader.load_registry(REPO / "data_manifest" / "registry.txt")
    assert set(loader.registry) == set(data.registry())
    assert all(c.startswith("sha256:") and len(c) == 71 for c in loader.registry.values())
    assert all(u == data.MIRROR_ONLY or u.startswith("https://") for u in loader.urls.values())
    assert loader.urls[OFFICIAL_FILE].startswith("https://ftp.ebi.ac.uk/pub/databases/emdb/")
    assert loader.urls[MIRROR_ONLY_FILE] == data.MIRROR_ONLY
    assert loader.urls["structures/bm5/1A2K_target.pdb.gz"] == data.MIRROR_ONLY


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
    assert "delete it" in str(err.value)


def _refuse_network(*args: object, **kwargs: object) -> None:
    raise requests.ConnectionError("network is unreachable (test)")


def test_fetch_offline_says_how_to_use_a_mirror(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path))
    monkeypatch.setattr(pooch, "retrieve", _refuse_network)
    with pytest.raises(DataError, match=r"emd_3488\.map\.gz") as err:
        data.fetch(OFFICIAL_FILE)
    assert data.ENV_VAR in str(err.value)
    assert data.registry()[OFFICIAL_FILE].url in str(err.value)


def test_fetch_rejects_a_download_with_the_wrong_hash(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def wrong_hash(*args: object, **kwargs: object) -> None:
        raise ValueError("SHA256 hash of downloaded file does not match the known hash (test)")

    monkeypatch.setenv(data.ENV_VAR, str(tmp_path))
    monkeypatch.setattr(pooch, "retrieve", wrong_hash)
    with pytest.raises(DataError, match=r"emd_3488\.map\.gz.*does not match"):
        data.fetch(OFFICIAL_FILE)


def test_fetch_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(DataError, match=r"maps/emd_3488\.map\.gz.*entries\(\)"):
        data.fetch("maps/emd_3489.map.gz")
    with pytest.raises(DataError, match=r"did you mean maps/emd_3488\.map\.gz"):
        data.fetch("emd_3488.map.gz")


def test_fetch_missing_mirror_only_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path))
    monkeypatch.setattr(pooch, "retrieve", _refuse_network)
    with pytest.raises(DataError, match=r"emd_44046_crop\.map\.gz.*mirror") as err:
        data.fetch(MIRROR_ONLY_FILE)
    assert data.ENV_VAR in str(err.value)


def test_data_dir_defaults_to_the_user_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    assert data.data_dir() == Path(pooch.os_cache("cryolab"))


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
