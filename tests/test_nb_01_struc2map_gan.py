"""The struc2mapGAN notebook: smoke run through papermill, book thresholds from disk."""

import json
from pathlib import Path

import pytest

from cryolab.pipelines.struc2map import Verdict

pytestmark = pytest.mark.notebook
NB = "01_struc2map_gan"
ROOT = Path(__file__).resolve().parents[1]
METRICS = ("pcc", "ssim", "cc_chimerax", "cc_about_mean", "fsc_05")


def test_smoke(run_notebook):
    m = run_notebook(NB)
    assert m["_wall_seconds"] < 90
    # the whole path ran and the generator learned
    assert m["train_loss_last"] < m["train_loss_first"]
    for name in ("GAN", "molmap", "pdb2mrc", "blur", "formfactor"):
        assert set(METRICS) <= set(m["scores"][name])
    # the simulators themselves are right: molmap's transform is 1/e at 1/R
    assert abs(m["molmap_fourier_at_1_over_R"] - 0.3679) < 0.01
    assert abs(m["molmap_blob_integral"] - 6.0) < 1e-3
    # the verdict stored is the package's verdict of the stored scores
    verdict = Verdict.of(m["scores"])
    assert (m["gan_beats_molmap_pcc"], m["gan_beats_molmap_cc_chimerax"]) == (
        verdict.beats_pcc, verdict.beats_cc)


def test_book_thresholds():
    path = ROOT / "results" / NB / "book" / "metrics.json"
    if not path.is_file():
        pytest.skip("no book run yet: run the notebook with -p profile book")
    m = json.loads(path.read_text())
    assert m["train_loss_last"] < m["train_loss_first"]
    scores = m["scores"]
    gan, molmap = scores["GAN"], scores["molmap"]
    # the paper's ablation: without SmoothL1 the output no longer follows the structure
    assert gan["pcc"] > scores["no SmoothL1 (adversarial only)"]["pcc"]
    # the notebook's verdict matches its numbers
    assert m["gan_beats_molmap_pcc"] == (gan["pcc"] > molmap["pcc"])
    assert m["gan_beats_molmap_cc_chimerax"] == (gan["cc_chimerax"] > molmap["cc_chimerax"])
    # the paper's headline claim on the held-out map; when the small CPU run cannot reproduce
    # it the notebook says so plainly (see its "Results beside the paper's"), reported as xfail
    if not (m["gan_beats_molmap_pcc"] and m["gan_beats_molmap_cc_chimerax"]):
        pytest.xfail(
            f"book profile: GAN PCC {gan['pcc']:.3f} vs molmap {molmap['pcc']:.3f}, ChimeraX "
            f"{gan['cc_chimerax']:.3f} vs {molmap['cc_chimerax']:.3f} — claim not reproduced"
        )
