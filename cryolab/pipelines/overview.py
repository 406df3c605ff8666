"""The book's results overview: each study's headline claim, the published number, ours.

Each :class:`Claim` reads one number from a chapter's ``metrics.json`` and says whether the
study's claim holds in our run. :func:`overview` assembles the table for one profile (the CPU
run) beside the committed GPU ``paper`` run where one exists, with the shipped model's number
(``cryolab.weights``) where one is measured for the claim. :func:`shipped_vs_trained` sets each
shipped model beside the model the chapter trains in its run, on the chapter's held-out data
(:data:`SHIPPED`), and says whether the shipped one is at least as good.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .. import weights
from ..results import repo_root
from ..shape_verdict import AFMVerdict
from ..superres import RealVerdict
from .afm_views import POSEVOX
from .struc2map import LeaveOneMapOut

__all__ = ["Claim", "CLAIMS", "overview", "ShippedCheck", "SHIPPED", "shipped_vs_trained"]

Metrics = dict[str, Any]


@dataclass(frozen=True)
class Claim:
    """One headline claim of a study and how to read our number for it.

    Attributes:
        notebook: the chapter's notebook name.
        study: short name of the study.
        claim: the claim in words.
        published: the study's number, as text.
        ours: reads our number from the chapter's metrics.
        holds: whether the claim holds for those metrics.
        shipped: reads the shipped model's number for the same claim (from the chapter's
            metrics where the run scores it, else from the model's card); ``None`` where no
            shipped model is measured for it.
    """

    notebook: str
    study: str
    claim: str
    published: str
    ours: Callable[[Metrics], float]
    holds: Callable[[Metrics], bool]
    shipped: Callable[[Metrics], float] | None = None


def _lomo(m: Metrics) -> Metrics:
    """Chapter 01's leave-one-map-out summary (the committed ``pretrained`` run's five folds,
    as the chapter's run read it)."""
    return m["lomo_pretrained"]


def _book_lomo(m: Metrics) -> LeaveOneMapOut:
    """Chapter 01's leave-one-map-out folds trained in the run itself (book: two folds)."""
    return LeaveOneMapOut.from_metrics(m["lomo"])


def _whole_wins(model: str, key: str) -> Callable[[Metrics], int]:
    """Reads on how many of the committed five folds ``model`` generated whole beats every
    simulator (``key``: ``wins`` on both scores, ``wins_pcc``, ``wins_cc``)."""
    return lambda m: _lomo(m)["whole_map"][model][key]


def _conditioned_vs_plain(m: Metrics):  # noqa: ANN202 - struc2map.Comparison
    """Chapter 01's resolution-conditioned generator against the plain one on the run's
    held-out maps (KeyError when the run trained no conditioned fold generator)."""
    comparison = _book_lomo(m).compare("conditioned GAN", "GAN")
    if comparison is None:
        raise KeyError("conditioned GAN")
    return comparison


def _card_lomo(name: str) -> LeaveOneMapOut:
    """The leave-one-map-out folds of a struc2mapGAN card: the shipped recipe, trained on
    four maps and scored on the fifth (KeyError when the card has none)."""
    return LeaveOneMapOut.from_metrics(weights.card(name)["evaluation"])


def _fold_mean(lomo: LeaveOneMapOut, method: str, maps: list[str], key: str = "pcc") -> float:
    """Mean ``key`` of ``method`` over the folds of ``lomo`` that hold out ``maps``."""
    folds = {f.test: f for f in lomo.folds}
    return sum(folds[t].scores[method][key] for t in maps) / len(maps)


def _afm(m: Metrics, method: str) -> AFMVerdict:
    """Chapter 06's verdict on ``method``: does it beat the mean shape and carving?"""
    return AFMVerdict.from_dict(m["verdicts"][method])


def _afm_iou(m: Metrics, method: str, views: int) -> float:
    """Chapter 06's validation IoU of ``method`` with ``views`` views."""
    return next(x.method_iou for x in _afm(m, method).margins if x.views == views)


def _real(m: Metrics, *methods: str) -> RealVerdict:
    """A chapter's verdict on real maps for the first of ``methods`` it ran (the shipped
    model when the run had one, else the model trained in the run)."""
    verdicts = m["real_verdicts"]
    return RealVerdict.from_dict(verdicts[next(x for x in methods if x in verdicts)])


def _whole_box(m: Metrics) -> dict[str, dict]:
    """Chapter 02's scores on EMD-3488's whole deposited box, by method."""
    return {r["method"]: r for r in m["whole_box"]}


def _keeps_whole_box(m: Metrics, tie: float = 0.05) -> bool:
    """The shipped path improves the whole box's map–model FSC-0.5 over the input's (by more
    than a ``tie`` in Å, as :class:`RealVerdict`) and keeps its envelope FSC (to 0.01)."""
    box = _whole_box(m)
    path, given = box["shipped U-Net"], box["input"]
    return bool(path["fsc05"] < given["fsc05"] - tie
                and path["envelope_fsc"] >= given["envelope_fsc"] - 0.01)


def _real_crops(m: Metrics, method: str = "U-Net (shipped)") -> list[dict]:
    """Chapter 05's scores of ``method`` on the real microtubule crops (one per crop)."""
    rows = [r for r in m["real_data"] if r["method"] == method]
    if not rows:
        raise KeyError(method)
    return rows


def _real_transfer(m: Metrics) -> bool:
    """The shipped denoiser keeps the walls' polarity and at least half of the 4 nm layer
    line's strength on every real crop."""
    return all(r["polarity"] > 0 and r["layer_lines_kept"]["4 nm"] >= 0.5 for r in _real_crops(m))


def _vs_topaz(m: Metrics, method: str = "U-Net (shipped)") -> dict[tuple[str, str], float]:
    """Chapter 05's whole-tomogram margins of ``method`` over the better Topaz model, by
    (truth, "psnr" | "correlation"); KeyError when Topaz was not run."""
    if m["topaz"]["skipped"]:
        raise KeyError("topaz")
    scores = m["whole_tomogram"]["scores"]
    margins = {}
    for truth in {r["truth"] for r in scores}:
        ours = next(r for r in scores if r["truth"] == truth and r["method"] == method)
        topaz = [r for r in scores if r["truth"] == truth and r["method"].startswith("Topaz")]
        for key in ("psnr", "correlation"):
            margins[truth, key] = ours[key] - max(r[key] for r in topaz)
    return margins


CLAIMS = (
    Claim("01_struc2map_gan", "struc2mapGAN",
          "GAN maps correlate better with experimental maps than every simulator (PCC; ours: "
          "mean over five held-out maps, leave one map out, maps from the paper's tiles; holds "
          "if above every simulator on at least 4 of 5)",
          "0.594 vs 0.452–0.483",
          lambda m: _lomo(m)["means"]["GAN"]["pcc"],
          lambda m: _lomo(m)["wins_pcc"] >= 4,
          lambda m: _card_lomo("gan").means()["GAN"]["pcc"]),
    Claim("01_struc2map_gan", "struc2mapGAN",
          "… and by ChimeraX correlation",
          "0.906 vs 0.559–0.613",
          lambda m: _lomo(m)["means"]["GAN"]["cc_chimerax"],
          lambda m: _lomo(m)["wins_cc"] >= 4,
          lambda m: _card_lomo("gan").means()["GAN"]["cc_chimerax"]),
    Claim("01_struc2map_gan", "struc2mapGAN, resolution-conditioned (ours)",
          "a generator told the wanted resolution, scored at each held-out map's own, beats the "
          "plain generator on PCC and ChimeraX correlation on every held-out map of the run "
          "(mean PCC difference)",
          "not in the paper",
          lambda m: _conditioned_vs_plain(m).mean_margin("pcc"),
          lambda m: _conditioned_vs_plain(m).better),
    *(Claim("01_struc2map_gan", study, claim, "not in the paper", _whole_wins(model, key),
            lambda m, model=model, key=key: _whole_wins(model, key)(m) >= 4)
      for study, model, key, claim in (
          ("struc2mapGAN, maps generated whole (ours)", "GAN", "wins_pcc",
           "the same leave-one-map-out generators run once over the whole held-out map (as "
           "cryolab simulate-map does) beat every simulator on PCC (held-out maps won of five; "
           "holds if at least 4)"),
          ("struc2mapGAN, maps generated whole (ours)", "GAN", "wins_cc",
           "… and on ChimeraX correlation"),
          ("struc2mapGAN, resolution-conditioned, generated whole (ours)", "conditioned GAN",
           "wins", "the resolution-conditioned generator, scored at each held-out map's own "
           "resolution, beats every simulator on both PCC and ChimeraX correlation (held-out "
           "maps won of five; holds if at least 4)"))),
    Claim("02_superres_unet3d", "3D U-Net super-resolution",
          "the U-Net raises the EMRinger score of degraded maps (ratio, prediction / input)",
          "≈ 2.4× (2BV8, 6AR7, 1A5S)",
          lambda m: m["emringer_gain"],
          lambda m: m["emringer_gain"] >= 1.5),
    Claim("02_superres_unet3d", "3D U-Net super-resolution",
          "… and its RSCC against the ground truth (prediction, input)",
          "not reported",
          lambda m: m["rscc_prediction_mean"],
          lambda m: m["rscc_prediction_mean"] > m["rscc_input_mean"]),
    Claim("03_sharpening_vae", "VAE sharpening",
          "a VAE sharpens low-resolution maps: RSCC above the degraded input's",
          "validation RSCC plateau ≈ 0.71 (bar 0.91)",
          lambda m: m["rscc"]["VAE"],
          lambda m: m["rscc"]["VAE"] > m["rscc"]["degraded input"]),
    Claim("02_superres_unet3d", "super-resolution on real maps (ours)",
          "the shipped U-Net (its real-map path: mean over 8 flips, the map's own content "
          "kept up to 10 Å, sharpened to its training targets' B) improves the five real "
          "cryo-EM maps over their input (EMRinger and map–model FSC-0.5) and beats global "
          "B-factor sharpening on ≥ 3 (maps improved, of 5)",
          "mixed gains on real maps (their Table 2)",
          lambda m: _real(m, "shipped U-Net", "U-Net (this run)").n_improved,
          lambda m: _real(m, "shipped U-Net", "U-Net (this run)").holds,
          lambda m: _real(m, "shipped U-Net").n_improved),
    Claim("02_superres_unet3d", "super-resolution on a real whole box (ours)",
          "on EMD-3488's whole deposited box, mostly solvent, the shipped U-Net's path "
          "improves the map–model FSC-0.5 over the input's and keeps the map's envelope "
          "(FSC-0.5, Å)",
          "not in the study",
          lambda m: _whole_box(m)["shipped U-Net"]["fsc05"],
          _keeps_whole_box,
          lambda m: _whole_box(m)["shipped U-Net"]["fsc05"]),
    Claim("03_sharpening_vae", "VAE sharpening on real maps (ours)",
          "… and so does the shipped VAE (maps improved, of 5)",
          "not in the study",
          lambda m: _real(m, "shipped VAE", "VAE with skips").n_improved,
          lambda m: _real(m, "shipped VAE", "VAE with skips").holds,
          lambda m: _real(m, "shipped VAE").n_improved),
    Claim("04_tomogram_simulation", "cryo-TomoSim",
          "a 400×400×50 tomogram at 10 Å, 61 tilts, simulated in seconds (s, 2 CPU cores)",
          "< 2 min model + < 1 min simulation (MATLAB + IMOD)",
          lambda m: m["pipeline_seconds"],
          lambda m: m["pipeline_seconds"] < 60),
    Claim("05_tomogram_learning", "cryo-TomoSim networks",
          "a U-Net trained on simulations denoises held-out tomograms (PSNR gain over the best "
          "Gaussian filter, dB)",
          "qualitative",
          lambda m: m["psnr_gain_over_gaussian_db"],
          lambda m: m["psnr_gain_over_gaussian_db"] >= 2),
    Claim("05_tomogram_learning", "cryo-TomoSim networks",
          "… and segments them (mean Dice over the non-background classes)",
          "qualitative",
          lambda m: m["mean_dice"],
          lambda m: m["mean_dice"] >= 0.6),
    Claim("05_tomogram_learning", "cryo-TomoSim networks",
          "… and, trained only on simulations, restores real tomograms: the shipped denoiser "
          "keeps the walls' polarity and ≥ half the 4 nm layer line on both real microtubule "
          "crops (lowest polarity r)",
          "qualitative (real tomograms look denoised)",
          lambda m: min(r["polarity"] for r in _real_crops(m)),
          _real_transfer,
          lambda m: min(r["polarity"] for r in _real_crops(m))),
    Claim("05_tomogram_learning", "cryo-TomoSim networks (ours)",
          "… and beats Topaz-Denoise3D on a whole held-out simulated tomogram on PSNR and "
          "correlation against both truths (smallest PSNR margin, dB)",
          "not in the paper",
          lambda m: min(v for (_, k), v in _vs_topaz(m).items() if k == "psnr"),
          lambda m: all(v > 0 for v in _vs_topaz(m).values()),
          lambda m: min(v for (_, k), v in _vs_topaz(m).items() if k == "psnr")),
    Claim("06_afm_pix2vox", "AFM + Pix2Vox++",
          "multi-view AFM images reconstruct the 3D shape: the network beats the mean training "
          "shape at every number of views and space carving at 1–3 (validation IoU, 5 views)",
          "0.51 (training 0.91); no baseline",
          lambda m: m["validation_iou_5_views"],
          lambda m: _afm(m, "Pix2Vox++").holds),
    Claim("06_afm_pix2vox", "AFM + PoseVox (ours)",
          "… told the view orientations, the shipped PoseVox does (validation IoU, 5 views)",
          "not in the paper",
          lambda m: _afm_iou(m, "PoseVox (shipped)", 5),
          lambda m: _afm(m, "PoseVox (shipped)").holds,
          lambda m: _afm_iou(m, "PoseVox (shipped)", 5)),
)


@dataclass(frozen=True)
class ShippedCheck:
    """A shipped model (``cryolab.weights``) beside the model its chapter trains in the run,
    on the chapter's held-out data: is the shipped one at least as good?

    Attributes:
        notebook: the chapter; model: the shipped model's name (:func:`cryolab.weights.card`).
        data: the held-out data and the score, in words.
        shipped: reads the shipped model's score (from the chapter's metrics, or its card).
        trained: reads the score of the model the chapter trained in the run.
        higher_is_better: the direction of the score.
    """

    notebook: str
    model: str
    data: str
    shipped: Callable[[Metrics], float]
    trained: Callable[[Metrics], float]
    higher_is_better: bool = True

    def at_least_as_good(self, shipped: float, trained: float) -> bool:
        """The shipped model's score is at least the trained one's (in the score's direction)."""
        return shipped >= trained if self.higher_is_better else shipped <= trained


def _real_mean(m: Metrics, method: str, key: str = "rscc") -> float:
    """Mean ``key`` of ``method`` over a chapter's real maps (``real_maps`` rows)."""
    rows = [r[key] for r in m["real_maps"] if r["method"] == method]
    if not rows:
        raise KeyError(method)
    return sum(rows) / len(rows)


#: Chapter 05's name of the whole tomogram's second truth (noise-free, with CTF and wedge).
_NOISE_FREE = "noise-free with CTF"


def _tomogram_psnr(m: Metrics, method: str, truth: str = "ideal") -> float:
    """Chapter 05's PSNR (dB) of ``method`` on its whole held-out tomogram against ``truth``."""
    return next(r["psnr"] for r in m["whole_tomogram"]["scores"]
                if r["method"] == method and r["truth"] == truth)


def _wall_dice(m: Metrics, method: str) -> float:
    """Chapter 05's mean Dice of ``method`` on the real microtubule walls (both crops)."""
    values = [crop[method] for crop in m["real_wall_dice"].values()]
    return sum(values) / len(values)


def _s2m_book_maps(m: Metrics) -> list[str]:
    return [f.test for f in _book_lomo(m).folds]


#: Each shipped model against the model its chapter trains in the run (chapter 01: the card's
#: leave-one-map-out folds of the shipped recipe on the maps the run holds out — the shipped
#: generator itself saw all five maps, so it has no held-out map of its own).
SHIPPED = (
    ShippedCheck("01_struc2map_gan", "gan",
                 "PCC on the run's held-out maps (mean; shipped: the same recipe's "
                 "leave-one-map-out folds in its card)",
                 lambda m: _fold_mean(_card_lomo("gan"), "GAN", _s2m_book_maps(m)),
                 lambda m: _fold_mean(_book_lomo(m), "GAN", _s2m_book_maps(m))),
    ShippedCheck("01_struc2map_gan", "gan_conditioned",
                 "PCC at each held-out map's resolution (mean; shipped: the same recipe's "
                 "leave-one-map-out folds in its card)",
                 lambda m: _fold_mean(_card_lomo("gan_conditioned"), "conditioned GAN",
                                      _s2m_book_maps(m)),
                 lambda m: _fold_mean(_book_lomo(m), "conditioned GAN", _s2m_book_maps(m))),
    ShippedCheck("02_superres_unet3d", "superres",
                 "RSCC on the test structures, the paper's noise model (mean)",
                 lambda m: m["shipped_test"]["rscc_prediction_mean"],
                 lambda m: m["rscc_prediction_mean"]),
    ShippedCheck("02_superres_unet3d", "superres",
                 "EMRinger on the test structures, the paper's noise model (mean)",
                 lambda m: m["shipped_test"]["emringer_prediction_mean"],
                 lambda m: m["emringer_prediction_mean"]),
    ShippedCheck("02_superres_unet3d", "superres",
                 "RSCC on the five real maps (mean)",
                 lambda m: _real_mean(m, "shipped U-Net"),
                 lambda m: _real_mean(m, "U-Net (this run)")),
    ShippedCheck("03_sharpening_vae", "vae",
                 "RSCC on the test entries, the study's noise model (mean; trained: the run's "
                 "better VAE)",
                 lambda m: m["table"]["shipped VAE"]["RSCC (masked)"],
                 lambda m: max(m["table"][v]["RSCC (masked)"] for v in ("VAE", "VAE with skips"))),
    ShippedCheck("03_sharpening_vae", "vae",
                 "RSCC on the five real maps (mean; trained: the run's better VAE)",
                 lambda m: _real_mean(m, "shipped VAE"),
                 lambda m: max(_real_mean(m, v) for v in ("VAE", "VAE with skips"))),
    ShippedCheck("05_tomogram_learning", "denoiser",
                 "PSNR (dB) on the whole held-out tomogram against the noise-free tomogram, "
                 "the shipped denoiser's main target (trained: the run's better denoiser "
                 "there, U-Net or Noise2Noise)",
                 lambda m: _tomogram_psnr(m, "U-Net (shipped)", _NOISE_FREE),
                 lambda m: max(_tomogram_psnr(m, x, _NOISE_FREE)
                               for x in ("U-Net (this run)", "Noise2Noise (this run)"))),
    ShippedCheck("05_tomogram_learning", "segmenter",
                 "Dice of the walls on the two real microtubule crops (mean)",
                 lambda m: _wall_dice(m, "segmenter (shipped)"),
                 lambda m: _wall_dice(m, "segmenter (this run)")),
    ShippedCheck("06_afm_pix2vox", "posevox",
                 "validation IoU from 5 views (shipped: the validation structures it never saw)",
                 lambda m: _afm_iou(m, "PoseVox (shipped)", 5),
                 lambda m: _afm_iou(m, POSEVOX, 5)),
)


def _metrics(notebook: str, profile: str, root: Path) -> Metrics | None:
    path = root / notebook / profile / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _value(read: Callable[[Metrics], Any] | None, metrics: Metrics | None) -> float | None:
    """``read(metrics)`` as a float, or ``None`` when there is nothing to read (no run, a run
    from an older version of the chapter, no card number)."""
    if read is None or metrics is None:
        return None
    try:
        return float(read(metrics))
    except (KeyError, TypeError, StopIteration, ValueError):
        return None


def _read(claim: Claim, metrics: Metrics | None) -> tuple[float | None, bool | None]:
    if metrics is None:
        return None, None
    try:
        return float(claim.ours(metrics)), bool(claim.holds(metrics))
    except (KeyError, TypeError, StopIteration):  # a run from an older version of the chapter
        return None, None


def overview(profile: str, results: Path | None = None) -> pd.DataFrame:
    """The claims table: published value, ours on CPU (``profile``), ours on GPU (``paper``
    runs committed under ``results/``), and whether the claim holds in each."""
    root = results or repo_root() / "results"
    rows = []
    for claim in CLAIMS:
        cpu, cpu_holds = _read(claim, _metrics(claim.notebook, profile, root))
        gpu, gpu_holds = _read(claim, _metrics(claim.notebook, "paper", root))
        rows.append({
            "study": claim.study,
            "claim": claim.claim,
            "published": claim.published,
            f"ours, CPU ({profile})": cpu,
            "holds (CPU)": {True: "yes", False: "no", None: "not run"}[cpu_holds],
            "shipped model": _value(claim.shipped,
                                    _metrics(claim.notebook, profile, root)),
            "ours, GPU (paper)": gpu,
            "holds (GPU)": {True: "yes", False: "no", None: "not run"}[gpu_holds],
            "chapter": claim.notebook,
        })
    return pd.DataFrame(rows)


def shipped_vs_trained(profile: str, results: Path | None = None) -> pd.DataFrame:
    """One row per :data:`SHIPPED` check: the shipped model's score and the score of the model
    the chapter trained in its ``profile`` run, on the chapter's held-out data, and whether the
    shipped one is at least as good (``"yes"``, ``"no"``, or ``"not measured"`` when either
    number is missing)."""
    root = results or repo_root() / "results"
    rows = []
    for check in SHIPPED:
        metrics = _metrics(check.notebook, profile, root)
        shipped, trained = _value(check.shipped, metrics), _value(check.trained, metrics)
        verdict = ("not measured" if shipped is None or trained is None
                   else "yes" if check.at_least_as_good(shipped, trained) else "no")
        rows.append({"model": check.model, "held-out data": check.data, "shipped model": shipped,
                     f"trained in the {profile} run": trained,
                     "shipped at least as good": verdict, "chapter": check.notebook})
    return pd.DataFrame(rows)
