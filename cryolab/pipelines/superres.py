"""Chapter glue for map super-resolution with a 3D U-Net (Mullick et al.).

The data, the U-Net's settings per profile and the scores are shared with the sharpening
chapter and live in :mod:`cryolab.superres`; this module holds what only this chapter shows:
the paper's Table 1, the per-entry results table and the EMRinger threshold-scan figure. The
real-map evaluation (five experimental maps, shared with the sharpening chapter) lives in
:mod:`cryolab.superres`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..superres import REAL_PAIRS, entry_files

__all__ = [
    "data_files",
    "PAPER_TABLE1",
    "results_table",
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


def data_files() -> list[str]:
    """The registered files this chapter reads, in any profile (``cryolab data download``)."""
    real = (n for p in REAL_PAIRS for n in (p.map_name, p.model_name))
    return sorted({*entry_files(), *real})
