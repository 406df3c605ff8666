"""The struc2mapGAN notebook: smoke run through papermill, book thresholds from disk."""

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from cryolab.pipelines.overview import CLAIMS
from cryolab.pipelines.struc2map import MIRROR, PROFILES, LeaveOneMapOut, Verdict

pytestmark = pytest.mark.notebook
NB = "01_struc2map_gan"
ROOT = Path(__file__).resolve().parents[1]
METRICS = ("pcc", "ssim", "cc_chimerax", "cc_about_mean", "fsc_05")
#: PCC of the same generator's whole map, stored by the run and regenerated from its
#: checkpoint (BLAS differences in the last bits of a voxel)
REGENERATED_TOLERANCE = 1e-3


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
    # the smoke profile's leave-one-map-out fold ran, and never trained on its test map
    fold = m["lomo"]["folds"][0]
    assert fold["test"] not in fold["train"] and len(fold["train"]) == 4
    assert {"GAN", "conditioned GAN", "molmap"} <= set(fold["scores"])
    # both generators were scored on the held-out map after each epoch
    for name in ("GAN", "conditioned GAN"):
        assert fold["heldout"][name]["epoch"] == [1, 2]
    _check_lomo_record(m["lomo"])
    # the chapter quotes the committed five-fold run, unchanged
    assert m["lomo_pretrained"] == _pretrained().summary()


def _check_lomo_record(record: dict) -> None:
    """The stored conditioned-vs-plain comparison and held-out trends are the package's, of
    the stored folds (so the chapter's text and the overview read the same numbers)."""
    lomo = LeaveOneMapOut.from_metrics(record)
    assert record["conditioned_vs_plain"] == lomo.compare("conditioned GAN", "GAN").as_dict()
    assert record["conditioned_vs_plain_whole"] == lomo.compare(whole=True).as_dict()
    for name, trend in record["heldout_trends"].items():
        assert trend == asdict(lomo.trend(name))
        assert record["whole_map"][name] == lomo.whole_map_summary(name)


def _pretrained() -> LeaveOneMapOut:
    path = ROOT / "results" / NB / "pretrained" / "metrics.json"
    return LeaveOneMapOut.from_metrics(json.loads(path.read_text())["lomo"])


def test_pretrained_leave_one_map_out_is_complete_and_consistent():
    """The committed pretrained run: five folds, each held-out map never in its training set,
    every simulator scored on each, and the stored verdicts are those of the stored scores."""
    path = ROOT / "results" / NB / "pretrained" / "metrics.json"
    record = json.loads(path.read_text())["lomo"]
    lomo = LeaveOneMapOut.from_metrics(record)
    assert sorted(f.test for f in lomo.folds) == sorted(MIRROR)
    for fold in lomo.folds:
        assert fold.test not in fold.train and set(fold.train) | {fold.test} == set(MIRROR)
        assert fold.resolution == MIRROR[fold.test].resolution
        assert fold.history["reconstruction"][-1] < fold.history["reconstruction"][0]
        assert record["verdicts"][fold.test] == {"beats_pcc": fold.verdict.beats_pcc,
                                                 "beats_cc": fold.verdict.beats_cc}
    summary = lomo.summary()
    assert {k: record[k] for k in summary} == summary


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
    # the book's two leave-one-map-out folds never trained on their test maps, and scored the
    # plain and the conditioned generator on the held-out map after every epoch
    epochs = PROFILES["book"].lomo_epochs
    for fold in m["lomo"]["folds"]:
        assert fold["test"] not in fold["train"]
        for name in ("GAN", "conditioned GAN"):
            curve = fold["heldout"][name]
            assert curve["epoch"] == list(range(1, epochs + 1))
        # the curve's last point is the fold's final generator, generated whole: regenerate
        # it from the checkpoint the run left and score it again
        checkpoint = ROOT / "results" / NB / "book" / f"fold_{fold['test']}_gan.pt"
        if checkpoint.is_file():
            assert abs(_whole_map_pcc(checkpoint, fold["test"])
                       - fold["heldout"]["GAN"]["pcc"][-1]) < REGENERATED_TOLERANCE
    _check_lomo_record(m["lomo"])
    # the overview's conditioned-vs-plain claim is the stored verdict
    claim = next(c for c in CLAIMS if "conditioned" in c.study)
    assert claim.holds(m) == m["lomo"]["conditioned_vs_plain"]["better"]
    # the paper's headline claim, as the chapter and the overview state it: over the five
    # held-out maps of the committed pretrained run, the GAN above every simulator on PCC and
    # on ChimeraX correlation on at least four; when the CPU run cannot reproduce it the
    # chapter says so and why (section 8), reported here as xfail
    lomo = m["lomo_pretrained"]
    assert lomo == _pretrained().summary()
    # the overview's rows for the same folds generated whole read the same summary
    whole = lomo["whole_map"]["GAN"]
    rows = [c for c in CLAIMS if c.study == "struc2mapGAN, maps generated whole (ours)"]
    assert [c.ours(m) for c in rows] == [whole["wins_pcc"], whole["wins_cc"]]
    assert [c.holds(m) for c in rows] == [whole["wins_pcc"] >= 4, whole["wins_cc"] >= 4]
    if not (lomo["wins_pcc"] >= 4 and lomo["wins_cc"] >= 4):
        pytest.xfail(
            f"pretrained leave-one-map-out, maps from the paper's tiles: GAN above every "
            f"simulator on PCC on {lomo['wins_pcc']} of 5 maps, on ChimeraX correlation on "
            f"{lomo['wins_cc']} of 5 (mean GAN PCC {lomo['means']['GAN']['pcc']:.3f}); the "
            f"same generators generated whole: PCC on {whole['wins_pcc']} of 5, ChimeraX on "
            f"{whole['wins_cc']} of 5 — the claim holds on PCC only when generated whole, and "
            f"the chapter shows why not on ChimeraX"
        )


def _whole_map_pcc(checkpoint: Path, test: str) -> float:
    """PCC with the held-out map of the fold generator in ``checkpoint``, generated whole."""
    import torch

    from cryolab.apply import generate_map
    from cryolab.nn.unetpp import UNetPlusPlus3D
    from cryolab.pipelines.struc2map import evaluate_map, load_pair, mirror_structure
    from cryolab.train import load_model

    torch.set_num_threads(1)
    held = MIRROR[test]
    pair = load_pair(held.map, held.model)
    generator = load_model(checkpoint, UNetPlusPlus3D, name="generator")
    made = generate_map(generator, mirror_structure(held.model), on_grid=pair.target,
                        mask_radius=3.0, whole=True)
    return evaluate_map(made.data, pair.target.data)["pcc"]
