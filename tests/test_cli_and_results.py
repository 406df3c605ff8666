"""The command line's shared behaviour, and where runs leave their results."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cryolab.cli import main
from cryolab.errors import ConfigError
from cryolab.results import load_metrics, pick_profile, results_dir, save_metrics


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert "cryolab" in capsys.readouterr().out


def test_fetch_prints_the_mirror_path(mirror, capsys):
    assert main(["fetch", "maps/emd_3488.map.gz"]) == 0
    assert capsys.readouterr().out.strip().endswith("maps/emd_3488.map.gz")


def test_unknown_file_is_one_line_and_status_2(mirror, capsys):
    assert main(["fetch", "maps/emd_9999.map.gz"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cryolab fetch: error:") and "emd_9999" in err
    assert "\n" not in err


def test_data_listing_filters(mirror, capsys):
    args = ["data", "--kind", "structure", "--method", "X-ray", "--max-resolution", "1.0"]
    assert main(args) == 0
    rows = capsys.readouterr().out.strip().splitlines()[1:]
    assert rows and all(float(r.split()[3]) <= 1.0 for r in rows)


def test_metrics_are_written_atomically_as_plain_json(tmp_path, monkeypatch):
    monkeypatch.setenv("CRYOLAB_RESULTS_DIR", str(tmp_path))
    path = save_metrics("nb", "smoke", {"a": np.float32(0.5), "b": np.arange(3), "c": float("nan")})
    assert path == tmp_path / "nb" / "smoke" / "metrics.json"
    record = json.loads(path.read_text())
    assert record["a"] == 0.5 and record["b"] == [0, 1, 2] and record["c"] is None
    assert record["profile"] == "smoke"
    assert load_metrics("nb", "smoke")["a"] == 0.5
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]


def test_profiles_are_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("CRYOLAB_RESULTS_DIR", str(tmp_path))
    assert pick_profile({"smoke": 1, "book": 2}, "book") == 2
    with pytest.raises(ConfigError, match="unknown profile 'quick'"):
        pick_profile({"smoke": 1}, "quick")
    with pytest.raises(ConfigError):
        results_dir("nb", "quick")
    with pytest.raises(ConfigError, match="no metrics yet"):
        load_metrics("nb", "book")
