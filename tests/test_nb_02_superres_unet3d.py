"""The super-resolution notebook: smoke run through papermill, book thresholds from disk."""

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.notebook
NB = "02_superres_unet3d"
ROOT = Path(__file__).resolve().parents[1]


def test_smoke(run_notebook):
    m = run_notebook(NB)
    assert m["_wall_seconds"] < 90
    assert m["loss_last"] < m["loss_first"]  # the Dice loss falls
    assert len(m["test_entries"]) >= 1
    assert not set(m["test_entries"]) & set(m["train_entries"])
    for row in m["per_entry"]:
        # a map computed from the model scores higher than its degraded version
        assert row["emringer_truth"] > row["emringer_input"]
    for case in m["real_maps_full"].values():
        assert case["residues"] > 100 and case["emringer"] > 1.0
    _check_real_maps(m, ("input", "B-factor sharpening", "U-Net (this run)"))
    _check_whole_box(m["whole_box"])


def _check_whole_box(rows):
    """The shipped path on EMD-3488's box: its envelope FSC (shells coarser than 10 Å) is the
    input's, put back by keep_low_resolution (to the sharpening's change of weights within a
    shell), whatever the network did there."""
    if rows is None:  # no shipped U-Net installed
        return
    by = {r["method"]: r for r in rows}
    assert set(by) == {"input", "shipped network alone",
                       "shipped network, low resolution kept only",
                       "shipped U-Net without the low-resolution step", "shipped U-Net"}
    assert by["shipped U-Net"]["envelope_fsc"] == pytest.approx(by["input"]["envelope_fsc"],
                                                                abs=0.01)
    assert by["shipped network, low resolution kept only"]["envelope_fsc"] == pytest.approx(
        by["input"]["envelope_fsc"], abs=1e-4)


def _check_real_maps(m, methods):
    """The five-map table: every map scored by every method, finite scores in their ranges,
    and each recorded verdict consistent with the table it was read from."""
    import math

    from cryolab.superres import REAL_PAIRS

    rows = m["real_maps"]
    assert {r["map"] for r in rows} == {p.label for p in REAL_PAIRS}
    for label in {r["map"] for r in rows}:
        assert set(methods) <= {r["method"] for r in rows if r["map"] == label}
    for r in rows:
        assert all(math.isfinite(r[k]) for k in ("emringer", "fsc05", "fsc0143", "rscc",
                                                 "cc_chimerax"))
        assert -1 <= r["rscc"] <= 1 and r["fsc05"] >= 2.1 - 1e-6  # native Nyquist, 1.05 Å
    by = {(r["map"], r["method"]): r for r in rows}
    for method, v in m["real_verdicts"].items():
        for label, up in v["emringer_up"].items():
            assert up == (by[label, method]["emringer"] > by[label, "input"]["emringer"])
        assert v["holds"] == (v["improves_all"] and v["n_beats_bfactor"] >= 3)


def test_book_thresholds():
    path = ROOT / "results" / NB / "book" / "metrics.json"
    if not path.is_file():
        pytest.skip("no book-profile results yet")
    m = json.loads(path.read_text())
    assert len(m["test_entries"]) >= 10
    assert m["emringer_prediction_mean"] >= 1.5 * m["emringer_input_mean"]
    assert m["rscc_prediction_mean"] > m["rscc_input_mean"]
    assert 3.5 <= m["degraded_fsc05_mean"] <= 5.0  # degraded maps look like 3.5–4.5 Å maps
    box = {r["method"]: r for r in m["whole_box"]}
    # on the whole box the network alone spoils the envelope, and the shipped path does not
    assert box["shipped network alone"]["envelope_fsc"] < box["input"]["envelope_fsc"] - 0.2
    assert box["shipped U-Net"]["fsc05"] < box["input"]["fsc05"]
