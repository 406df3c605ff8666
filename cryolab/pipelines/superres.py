"""Chapter glue for map super-resolution with a 3D U-Net (Mullick et al.).

The data, the U-Net's settings per profile and the scores are shared with the sharpening
chapter and live in :mod:`cryolab.superres`; this module holds what only this chapter shows:
the paper's Table 1, the per-entry results table, the real-map case (EMD-3488 before and after
the network) and the EMRinger threshold-scan figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import gemmi
import numpy as np
import pandas as pd
import torch

from ..data import fetch
from ..density import resample
from ..emringer import emringer
from ..io import Volume, read_map, read_structure
from ..normalise import percentile_scale
from ..superres import (
    INPUT_PERCENTILE,
    SuperResProfile,
    crop_around,
    entry_files,
    predict_map,
)

__all__ = [
    "data_files",
    "PAPER_TABLE1",
    "results_table",
    "RealMapCase",
    "real_map_case",
    "plot_threshold_scan",
    "SCORES",
    "TestMeans",
]

#: The paper's Table 1: EMRinger of (degraded input, prediction, ground truth).
PAPER_TABLE1 = {
    "2BV8": (2.439, 6.781, 8.057),
    "6AR7": (2.439, 5.620, 7.651),
    "1A5S": (2.036, 4.479, 4.234),
}
def results_table(rows: Sequence[dict]) -> pd.DataFrame:
    """Per-entry evaluation rows as a DataFrame indexed by entry, with a mean row."""
    df = pd.DataFrame(list(rows)).set_index("entry")
    df.loc["mean"] = df.mean(numeric_only=True)
    return df


@dataclass
class RealMapCase:
    """A real cryo-EM map, its fitted model, the network's prediction and both scores."""

    name: str
    structure: gemmi.Structure
    before: Volume
    after: Volume
    emringer_before: float
    emringer_after: float
    residues: int


def real_map_case(
    model: torch.nn.Module, map_name: str, structure_name: str, profile: SuperResProfile,
    device: str | None = None,
) -> RealMapCase:
    """EMRinger of a mirror map before and after the U-Net (cropped to ``profile.real_crop``
    Å around the model when set; the map is resampled to 1 Å and normalised first)."""
    st = read_structure(fetch(structure_name))
    vol = read_map(fetch(map_name))
    if profile.real_crop:
        vol = crop_around(vol, st, profile.real_crop)
    on_grid = resample(vol, 1.0, order=3, mode="nearest")
    on_grid = on_grid.with_data(percentile_scale(on_grid.data, INPUT_PERCENTILE))
    prediction = predict_map(model, on_grid, profile, device)
    before, after = emringer(vol, st), emringer(prediction, st)
    return RealMapCase(map_name, st, on_grid, prediction, before.score, after.score,
                       before.n_residues)


def plot_threshold_scan(results: dict, title: str = "EMRinger threshold scan"):
    """z-score-derived EMRinger score (10·z/√n) against threshold for several maps
    (``{label: EMRingerResult}``), thresholds as a fraction of the range scanned."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.5), constrained_layout=True)
    for label, res in results.items():
        frac = np.arange(len(res.thresholds)) / len(res.thresholds)
        ax.plot(frac, 10 * res.zscores / np.sqrt(res.n_residues), marker=".",
                label=f"{label} ({res.score:.2f})")
    ax.set_xlabel("threshold (fraction of the way from mean to maximum)")
    ax.set_ylabel("EMRinger score at threshold")
    ax.set_title(title)
    ax.legend(frameon=False)
    return fig


#: The scores :func:`cryolab.superres.evaluate` gives each entry, averaged in a results table.
SCORES = ("emringer_input", "emringer_prediction", "emringer_truth", "rscc_input",
          "rscc_prediction", "pcc_input", "pcc_prediction", "fsc05_input", "fsc05_prediction")


@dataclass(frozen=True)
class TestMeans:
    """The chapter's scores averaged over the test entries, and the claims read from them.

    Attributes:
        means: ``{score: mean over the entries}`` for every name of :data:`SCORES`
            (EMRinger scores, RSCC and PCC against the ground truth, FSC-0.5 resolution in Å).
    """

    means: dict[str, float]

    @classmethod
    def of(cls, table: pd.DataFrame) -> TestMeans:
        """The means of a :func:`results_table` (its ``"mean"`` row)."""
        row = table.loc["mean"]
        return cls({name: float(row[name]) for name in SCORES})

    @property
    def emringer_gain(self) -> float:
        """The paper's headline: mean EMRinger of the predictions over that of the inputs."""
        return self.means["emringer_prediction"] / self.means["emringer_input"]

    @property
    def rscc_rose(self) -> bool:
        """Whether the prediction's RSCC against the ground truth beats the input's."""
        return self.means["rscc_prediction"] > self.means["rscc_input"]

    def as_metrics(self) -> dict[str, float]:
        """The ``metrics.json`` entries: ``<score>_mean`` for every score and ``emringer_gain``."""
        record = {f"{name}_mean": value for name, value in self.means.items()}
        record["emringer_gain"] = self.emringer_gain
        return record


#: The real maps the chapter scores with EMRinger: (label, map, model) registered names.
REAL_CASES = (
    ("EMD-3488", "maps/emd_3488.map.gz", "structures/ccpem/5me2.pdb.gz"),
    ("EMD-0093", "maps/emd_0093_masked.map.gz", "structures/mainmastseg/6gyn.pdb.gz"),
)


def data_files() -> list[str]:
    """The registered files this chapter reads, in any profile (``cryolab data download``)."""
    return sorted({*entry_files(), *(n for _, m, s in REAL_CASES for n in (m, s))})
