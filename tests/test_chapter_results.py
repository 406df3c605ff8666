"""Chapter results as typed objects: the verdicts and metrics.json schemas notebooks save."""

import pytest

from cryolab.pipelines.overview import CLAIMS
from cryolab.pipelines.struc2map import Struc2MapRun, Verdict, count_at_least


def _scores(gan_pcc: float, gan_cc: float) -> dict:
    return {"GAN": {"pcc": gan_pcc, "ssim": 0.5, "cc_chimerax": gan_cc, "cc_about_mean": 0.2},
            "molmap": {"pcc": 0.5, "ssim": 0.5, "cc_chimerax": 0.7, "cc_about_mean": 0.3}}


@pytest.mark.parametrize(("pcc", "cc", "claim"), [
    (0.6, 0.8, "reproduced"), (0.6, 0.6, "only partly reproduced"),
    (0.4, 0.8, "only partly reproduced"), (0.4, 0.6, "not reproduced"),
    (0.5, 0.7, "not reproduced"),  # a tie does not beat molmap
])
def test_verdict_reads_the_scores(pcc, cc, claim):
    verdict = Verdict.of(_scores(pcc, cc))
    assert verdict.claim == claim
    assert verdict.beats_pcc == (pcc > 0.5) and verdict.beats_cc == (cc > 0.7)


def test_count_at_least_in_words():
    a = {"pcc": 1, "ssim": 1, "cc_chimerax": 0, "cc_about_mean": 0}
    b = {"pcc": 0, "ssim": 1, "cc_chimerax": 0, "cc_about_mean": 1}
    assert count_at_least(a, b) == "one"
    assert count_at_least(a, b, strict=False) == "three"


def test_struc2map_metrics_schema_is_what_the_overview_reads():
    lomo = {"means": {"GAN": {"pcc": 0.6, "cc_chimerax": 0.8}}, "wins": 3, "n_folds": 5,
            "wins_pcc": 4, "wins_cc": 3}
    run = Struc2MapRun(
        history={"loss": [2.0, 1.0], "reconstruction": [0.5, 0.4]}, scores=_scores(0.6, 0.6),
        molmap_fourier_at_1_over_R=0.37, molmap_blob_integral=6.0, generation_seconds={},
        training_seconds={"GAN": 3.0}, timings={}, test_map="t", train_maps=["a"],
        conditioned={}, lomo_pretrained=lomo,
    )
    m = run.as_metrics()
    assert (m["train_loss_first"], m["train_loss_last"]) == (2.0, 1.0)
    assert (m["gan_beats_molmap_pcc"], m["gan_beats_molmap_cc_chimerax"]) == (True, False)
    # the overview reads the five-fold verdict: above every simulator on >= 4 of 5 maps
    claims = [c for c in CLAIMS if c.study == "struc2mapGAN"]
    assert [c.holds(m) for c in claims] == [True, False]
    assert [c.ours(m) for c in claims] == [0.6, 0.8]


def test_superres_test_means_from_a_results_table():
    from cryolab.pipelines.superres import SCORES, TestMeans, results_table

    rows = [{"entry": e, **{s: float(i + 1) for s in SCORES}} for i, e in enumerate("AB")]
    rows[0]["emringer_prediction"] = 4.5  # A: 1 → 4.5; B: 2 → 2; means 1.5 → 3.25
    means = TestMeans.of(results_table(rows))
    assert means.means["emringer_input"] == 1.5 and means.emringer_gain == 3.25 / 1.5
    m = means.as_metrics()
    assert set(m) == {f"{s}_mean" for s in SCORES} | {"emringer_gain"}
    claims = {c.claim: c for c in CLAIMS if c.notebook == "02_superres_unet3d"
              and "real" not in c.study}  # the real-map claim reads the real-map table
    assert len(claims) == 2 and all(c.holds(m) is not None for c in claims.values())
    assert not means.rscc_rose  # equal means: the RSCC did not rise
