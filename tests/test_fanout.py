"""Sets of items fanned out on Dask (cryolab.fanout): seeds per item, worker-count invariance,
resume after an interruption, failures reported by index."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_tomo_simulate import SMALL as TINY  # a 32×32×20-voxel tomogram in a second

from cryolab.cli import main
from cryolab.errors import ConfigError, ItemsFailed
from cryolab.fanout import PARTIAL, item_names, item_seed, make_set
from cryolab.outputs import MARKER


def _contents(folder: Path) -> dict[str, bytes]:
    """Every file of a set, byte for byte, by its path relative to the set."""
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def config(tmp_path_factory, mirror):
    path = tmp_path_factory.mktemp("cfg") / "tiny.yml"
    path.write_text(yaml.safe_dump(TINY))
    return path


@pytest.fixture(scope="module")
def serial_set(config, tmp_path_factory):
    out = tmp_path_factory.mktemp("serial") / "set"
    assert main(["simulate-tomo", str(config), "--n", "4", "--out", str(out), "--workers", "0",
                 "--quiet"]) == 0
    return out


def test_item_seeds_are_spawned_seed_sequences():
    # the same streams numpy's SeedSequence.spawn hands out, whatever the set's size
    children = np.random.SeedSequence(7).spawn(5)
    assert [item_seed(7, i) for i in range(5)] == [int(c.generate_state(1)[0]) for c in children]
    assert len({item_seed(7, i) for i in range(1000)}) == 1000
    assert item_seed(7, 3) != item_seed(8, 3)
    with pytest.raises(ConfigError):
        item_seed(-1, 0)


def test_item_names_are_ordered_and_distinct():
    names = item_names(["a/1ABC.pdb.gz", "b/1ABC.pdb.gz", "x.cif"], ".mrc")
    assert names == ["0000_1ABC.mrc", "0001_1ABC.mrc", "0002_x.mrc"]


def test_serial_set_has_distinct_items(serial_set):
    names = sorted(p.name for p in serial_set.iterdir())
    assert names == [MARKER, "tomo_0000", "tomo_0001", "tomo_0002", "tomo_0003"]
    names = names[1:]
    seeds = [json.loads((serial_set / n / "parameters.json").read_text())["seed"] for n in names]
    assert seeds == [item_seed(TINY["seed"], i) for i in range(4)]
    a, b = (serial_set / n / "tomogram.mrc" for n in names[:2])
    assert a.read_bytes()[1024:] != b.read_bytes()[1024:]


def test_two_dask_workers_give_the_serial_bytes(config, serial_set, tmp_path):
    out = tmp_path / "dask"
    assert main(["simulate-tomo", str(config), "--n", "4", "--out", str(out), "--workers", "2",
                 "--quiet"]) == 0
    assert _contents(out) == _contents(serial_set)


def test_interrupted_set_resumes_on_dask(config, serial_set, tmp_path, capsys):
    out = tmp_path / "resumed"
    assert main(["simulate-tomo", str(config), "--n", "2", "--out", str(out), "--workers", "0",
                 "--quiet"]) == 0
    stale = out / f"{PARTIAL}2-killed"  # what a killed worker leaves behind
    (stale / "tomo_0002").mkdir(parents=True)
    (stale / "tomo_0002" / "tomogram.mrc").write_bytes(b"half a file")
    capsys.readouterr()
    assert main(["simulate-tomo", str(config), "--n", "4", "--out", str(out), "--workers", "2",
                 "--quiet"]) == 0
    assert "2 tomograms made, 2 already there" in capsys.readouterr().out
    assert not stale.exists()
    assert _contents(out) == _contents(serial_set)


def _flaky(item, folder: Path) -> Path:
    if item.index in (1, 3):
        raise ValueError(f"no luck with {item.name}")
    path = folder / item.name
    path.write_text(str(item.seed))
    return path


def _steady(item, folder: Path) -> Path:
    path = folder / item.name
    path.write_text(str(item.seed))
    return path


def test_failed_items_are_named_and_retried(tmp_path):
    names = [f"item{i}.txt" for i in range(5)]
    with pytest.raises(ItemsFailed, match=r"2 of 5 items failed, indices 1, 3 \(item 1: "
                                          r"ValueError: no luck with item1.txt\)"):
        make_set(_flaky, names, tmp_path, seed=3, workers=0, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [MARKER, "item0.txt", "item2.txt",
                                                          "item4.txt"]
    report = make_set(_steady, names, tmp_path, seed=3, workers=0, progress=False)
    assert report.made == [1, 3] and report.skipped == [0, 2, 4]
    assert [int((tmp_path / n).read_text()) for n in names] == [item_seed(3, i) for i in range(5)]


def test_failed_map_on_dask_is_one_line_naming_its_index(tmp_path, capsys, mirror):
    from cryolab.data import fetch

    good = str(fetch("structures/bm5/1A2K_target.pdb.gz"))
    missing = str(tmp_path / "missing.pdb")
    out = tmp_path / "maps"
    status = main(["simulate-map", good, missing, "--resolution", "8", "--out", str(out),
                   "--workers", "2", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert len(err.splitlines()) == 1
    assert "1 of 2 items failed, indices 1 (item 1:" in err and "missing.pdb" in err
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "0000_1A2K_target.mrc"]
