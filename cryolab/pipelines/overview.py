"""The book's results overview: each study's headline claim, the published number, ours.

Each :class:`Claim` reads one number from a chapter's ``metrics.json`` and says whether the
study's claim holds in our run. :func:`overview` assembles the table for one profile (the CPU
run) beside the committed GPU ``paper`` run where one exists.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..results import repo_root
from ..shape_verdict import AFMVerdict

__all__ = ["Claim", "CLAIMS", "overview"]

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
    """

    notebook: str
    study: str
    claim: str
    published: str
    ours: Callable[[Metrics], float]
    holds: Callable[[Metrics], bool]


def _gan(m: Metrics, metric: str) -> float:
    return m["scores"]["GAN"][metric]


def _afm(m: Metrics, method: str) -> AFMVerdict:
    """Chapter 06's verdict on ``method``: does it beat the mean shape and carving?"""
    return AFMVerdict.from_dict(m["verdicts"][method])


def _afm_iou(m: Metrics, method: str, views: int) -> float:
    """Chapter 06's validation IoU of ``method`` with ``views`` views."""
    return next(x.method_iou for x in _afm(m, method).margins if x.views == views)


CLAIMS = (
    Claim("01_struc2map_gan", "struc2mapGAN",
          "GAN maps correlate better with experimental maps than molmap (PCC)",
          "0.594 vs 0.452–0.483",
          lambda m: _gan(m, "pcc"),
          lambda m: _gan(m, "pcc") > m["scores"]["molmap"]["pcc"]),
    Claim("01_struc2map_gan", "struc2mapGAN",
          "… and by ChimeraX correlation",
          "0.906 vs 0.559–0.613",
          lambda m: _gan(m, "cc_chimerax"),
          lambda m: _gan(m, "cc_chimerax") > m["scores"]["molmap"]["cc_chimerax"]),
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
          lambda m: _afm(m, "PoseVox (shipped)").holds),
)


def _metrics(notebook: str, profile: str, root: Path) -> Metrics | None:
    path = root / notebook / profile / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _read(claim: Claim, metrics: Metrics | None) -> tuple[float | None, bool | None]:
    if metrics is None:
        return None, None
    try:
        return float(claim.ours(metrics)), bool(claim.holds(metrics))
    except (KeyError, TypeError):  # a run from an older version of the chapter
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
            "ours, GPU (paper)": gpu,
            "holds (GPU)": {True: "yes", False: "no", None: "not run"}[gpu_holds],
            "chapter": claim.notebook,
        })
    return pd.DataFrame(rows)
