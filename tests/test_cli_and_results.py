"""The command line's shared behaviour, and where runs leave their results."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_bad_inputs import write_alanine

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


# ------------------------------------------------------------------ the write policy


def _structure(path):
    write_alanine(path)
    return path


TOMO_CONFIG = ("specimen: {size: [200, 200, 100], pixel_size: 10}\n"
               "microscope: {min_angle: -30, max_angle: 30, step: 30}\n")


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_afm_rerun_into_an_earlier_run_leaves_no_stale_views(tmp_path, capsys):
    pdb = _structure(tmp_path / "ala.pdb")
    out = tmp_path / "views"
    base = ["afm", str(pdb), "--image-size", "8", "--out", str(out)]
    assert main([*base, "--views", "3"]) == 0
    assert (out / "view_002.png").is_file()
    assert main([*base, "--views", "2"]) == 2  # exists: refused without --overwrite
    assert (out / "view_002.png").is_file()
    assert main([*base, "--views", "2", "--overwrite"]) == 0
    names = sorted(_files(out))
    assert names == [".cryolab-output", "grid.json", "orientations.csv", "view_000.png",
                     "view_001.png", "views.npy"]
    assert np.load(out / "views.npy").shape == (2, 8, 8)


def test_overwrite_never_deletes_a_folder_cryolab_did_not_write(tmp_path, monkeypatch, capsys):
    pdb = _structure(tmp_path / "ala.pdb")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    monkeypatch.chdir(mine)
    for out in (".", "..", str(mine)):
        assert main(["afm", str(pdb), "--views", "1", "--out", out, "--overwrite"]) == 2
    cfg = tmp_path / "cfg.yml"
    cfg.write_text(TOMO_CONFIG)
    assert main(["simulate-tomo", str(cfg), "--out", ".", "--overwrite", "--quiet"]) == 2
    assert main(["simulate-tomo", str(cfg), "--out", str(mine), "--overwrite", "--quiet"]) == 2
    assert (mine / "thesis.tex").read_text() == "years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ala.pdb", "cfg.yml", "mine"]
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 5 and all("--out" in line for line in err)


def test_overwrite_replaces_an_earlier_file_and_never_an_input(tmp_path, capsys):
    pdb = _structure(tmp_path / "ala.pdb")
    out = tmp_path / "m.mrc"
    out.write_bytes(b"an older map")
    args = ["simulate-map", str(pdb), "--resolution", "4", "--out", str(out)]
    assert main(args) == 2 and out.read_bytes() == b"an older map"
    assert main([*args, "--overwrite"]) == 0 and out.read_bytes() != b"an older map"
    grid = out.read_bytes()
    assert main(["sharpen", str(out), "--method", "bfactor", "--resolution", "5",
                 "--out", str(out), "--overwrite"]) == 2
    assert out.read_bytes() == grid
    assert "input" in capsys.readouterr().err


def test_outputs_follow_the_umask(tmp_path, capsys):
    import os
    import stat

    pdb = _structure(tmp_path / "ala.pdb")
    old = os.umask(0o027)
    try:
        assert main(["afm", str(pdb), "--views", "1", "--image-size", "8",
                     "--out", str(tmp_path / "new" / "views")]) == 0
        assert main(["simulate-map", str(pdb), "--resolution", "4",
                     "--out", str(tmp_path / "m.mrc")]) == 0
    finally:
        os.umask(old)
    for folder in (tmp_path / "new", tmp_path / "new" / "views"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o750
    for path in [*(tmp_path / "new" / "views").iterdir(), tmp_path / "m.mrc"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path


def test_ctrl_c_is_one_line_status_130_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    import cryolab.density

    pdb = _structure(tmp_path / "ala.pdb")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cryolab.density, "simulate", interrupted)
    assert main(["simulate-map", str(pdb), "--resolution", "4",
                 "--out", str(tmp_path / "out" / "m.mrc")]) == 130
    assert capsys.readouterr().err == "cryolab simulate-map: interrupted\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ala.pdb"]


# ------------------------------------------------------------------- reproducible bytes


def test_two_runs_give_identical_bytes(tmp_path, capsys):
    pdb = _structure(tmp_path / "ala.pdb")
    cfg = tmp_path / "cfg.yml"
    cfg.write_text(TOMO_CONFIG)
    runs = []
    for run in ("a", "b"):
        d = tmp_path / run
        assert main(["simulate-map", str(pdb), "--resolution", "4",
                     "--out", str(d / "m.mrc")]) == 0
        assert main(["simulate-map", str(pdb), "--resolution", "4", "--method", "formfactor",
                     "--out", str(d / "m.mrc.gz")]) == 0
        assert main(["afm", str(pdb), "--views", "2", "--image-size", "8", "--noise", "0.5",
                     "--out", str(d / "views")]) == 0
        assert main(["simulate-tomo", str(cfg), "--quiet", "--out", str(d / "tomo")]) == 0
        runs.append(_files(d))
    a, b = runs
    assert "tomo/parameters.json" in a and "views/view_001.png" in a and "m.mrc.gz" in a
    assert a.keys() == b.keys()
    assert [name for name in a if a[name] != b[name]] == []
    assert "timings" not in json.loads(a["tomo/parameters.json"])


def test_an_empty_folder_of_the_users_is_kept_and_filled(tmp_path, capsys):
    import stat

    pdb = _structure(tmp_path / "ala.pdb")
    out = tmp_path / "views"
    out.mkdir(mode=0o700)
    inode = out.stat().st_ino
    assert main(["afm", str(pdb), "--views", "1", "--image-size", "8", "--out", str(out)]) == 2
    assert main(["afm", str(pdb), "--views", "1", "--image-size", "8", "--out", str(out),
                 "--overwrite"]) == 0
    assert out.stat().st_ino == inode and stat.S_IMODE(out.stat().st_mode) == 0o700
    assert (out / "view_000.png").is_file() and (out / ".cryolab-output").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ala.pdb", "views"]


def test_models_lists_every_shipped_model_and_prints_its_card(capsys):
    import json

    from cryolab import weights

    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    for name in weights.available():
        assert any(line.startswith(f"{name}\t") for line in listing.splitlines())
    assert f"{len(weights.available())} shipped models" in listing
    name = weights.available()[0]
    assert main(["models", name]) == 0
    assert json.loads(capsys.readouterr().out) == weights.card(name)
