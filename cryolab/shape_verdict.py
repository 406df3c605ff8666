"""Whether a 3D reconstruction method learned shape: its IoU margins over the simple
baselines (the mean training shape, space carving), with bootstrap intervals over structures.

Chapter 06 stores each verdict in its metrics.json (:meth:`AFMVerdict.to_dict`); the results
overview and the shipped model's card read them back (:meth:`AFMVerdict.from_dict`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

__all__ = ["MEAN_SHAPE", "CARVING", "FEW_VIEWS", "Margin", "AFMVerdict", "SeedSpread",
           "verdict"]

#: the baselines' method names in chapter 06's score tables
MEAN_SHAPE = "mean training shape"
CARVING = "space carving"


@dataclass(frozen=True)
class Margin:
    """Mean IoU of a method minus a baseline's on the same structures and views, with the
    95% bootstrap interval over structures (resampled with replacement)."""

    method: str
    baseline: str
    views: int
    method_iou: float
    baseline_iou: float
    margin: float
    low: float
    high: float

    @property
    def beats(self) -> bool:
        """The method is better beyond the spread: the whole interval is above zero."""
        return self.low > 0


#: the view counts at which a network must beat carving (few views, where priors matter)
FEW_VIEWS = (1, 2, 3)


@dataclass(frozen=True)
class AFMVerdict:
    """Whether a network reconstructs shape from the views: it must beat the mean training
    shape at every number of views, and space carving at 1–3 views, on validation
    structures, each by a margin whose bootstrap interval excludes zero."""

    method: str
    margins: tuple[Margin, ...]

    def over(self, baseline: str) -> list[Margin]:
        """The margins over one baseline, by number of views."""
        return [m for m in self.margins if m.baseline == baseline]

    @property
    def beats_mean_shape(self) -> bool:
        """Better than the mean training shape at every number of views."""
        return all(m.beats for m in self.over(MEAN_SHAPE))

    @property
    def beats_carving_few_views(self) -> bool:
        """Better than space carving at every evaluated number of views in :data:`FEW_VIEWS`."""
        few = [m for m in self.over(CARVING) if m.views in FEW_VIEWS]
        return bool(few) and all(m.beats for m in few)

    @property
    def holds(self) -> bool:
        """Both of the above."""
        return self.beats_mean_shape and self.beats_carving_few_views

    def to_dict(self) -> dict:
        """Plain JSON-ready form (``from_dict`` reads it back)."""
        return {"method": self.method, "beats_mean_shape": self.beats_mean_shape,
                "beats_carving_few_views": self.beats_carving_few_views, "holds": self.holds,
                "margins": [asdict(m) for m in self.margins]}

    @classmethod
    def from_dict(cls, d: dict) -> AFMVerdict:
        """The verdict stored by :meth:`to_dict` (e.g. in a chapter's metrics.json)."""
        return cls(d["method"], tuple(Margin(**m) for m in d["margins"]))

    def describe(self) -> str:
        """Where the method beats, ties with and falls below each baseline, in words."""

        def counts(views: list[int]) -> str:
            return ", ".join(map(str, views)) + (" view" if views == [1] else " views")

        clauses = []
        for baseline in (MEAN_SHAPE, CARVING):
            margins = self.over(baseline)
            groups = {"beats": [m.views for m in margins if m.beats],
                      "is level with": [m.views for m in margins if m.low <= 0 <= m.high],
                      "falls below": [m.views for m in margins if m.high < 0]}
            said = [f"{how} the {baseline} at {counts(v)}" for how, v in groups.items() if v]
            clauses.append(" and ".join(said))
        return f"{self.method} " + "; it ".join(clauses)

    def table(self) -> pd.DataFrame:
        """The margins as a table indexed by baseline and views."""
        return pd.DataFrame([asdict(m) for m in self.margins]).set_index(["baseline", "views"])


@dataclass(frozen=True)
class SeedSpread:
    """Run-to-run spread of a verdict: the same recipe trained with several seeds (same data,
    same split) and each run scored on the same validation structures. A claim holds across
    runs when it holds for every seed; each margin is then stated as its mean ± standard
    deviation over the seeds (the bootstrap interval of one run measures the spread over
    structures, this one the spread over training runs)."""

    seeds: tuple[int, ...]
    verdicts: tuple[AFMVerdict, ...]

    def __post_init__(self) -> None:
        if len(self.seeds) != len(self.verdicts) or len(self.seeds) < 2:
            raise ValueError("SeedSpread needs one verdict per seed, and at least two seeds")
        keys = {tuple((m.baseline, m.views) for m in v.margins) for v in self.verdicts}
        if len(keys) != 1:
            raise ValueError("every run must be scored against the same baselines and views")

    @property
    def holds_in_every_run(self) -> bool:
        """The verdict (:attr:`AFMVerdict.holds`) holds for every seed."""
        return all(v.holds for v in self.verdicts)

    def table(self) -> pd.DataFrame:
        """Margins by baseline and views: mean, standard deviation (ddof 1), smallest margin
        and smallest bootstrap lower bound over the seeds, and how many runs beat."""
        rows = []
        for i, first in enumerate(self.verdicts[0].margins):
            runs = [v.margins[i] for v in self.verdicts]
            margins = np.array([m.margin for m in runs])
            rows.append({"baseline": first.baseline, "views": first.views,
                         "method_iou": float(np.mean([m.method_iou for m in runs])),
                         "margin": float(margins.mean()), "sd": float(margins.std(ddof=1)),
                         "min": float(margins.min()), "lowest_low": min(m.low for m in runs),
                         "runs_beating": sum(m.beats for m in runs)})
        return pd.DataFrame(rows).set_index(["baseline", "views"])

    def describe(self) -> str:
        """The margins over the mean shape at every number of views and over carving at
        :data:`FEW_VIEWS`, mean ± SD over the seeds, in words."""
        t = self.table()
        parts = []
        for baseline, views in ((MEAN_SHAPE, None), (CARVING, FEW_VIEWS)):
            sub = t.loc[baseline]
            if views is not None:
                sub = sub[sub.index.isin(views)]
            said = ", ".join(f"{r.margin:+.3f} ± {r.sd:.3f} at {v}" for v, r in sub.iterrows())
            parts.append(f"over the {baseline} {said} views")
        return (f"over {len(self.seeds)} training seeds, the margins (mean ± SD) are "
                + "; ".join(parts))

    def to_dict(self) -> dict:
        """Plain JSON-ready form (``from_dict`` reads it back)."""
        return {"seeds": list(self.seeds), "holds_in_every_run": self.holds_in_every_run,
                "verdicts": [v.to_dict() for v in self.verdicts]}

    @classmethod
    def from_dict(cls, d: dict) -> SeedSpread:
        """The spread stored by :meth:`to_dict` (e.g. in a model card)."""
        return cls(tuple(d["seeds"]), tuple(AFMVerdict.from_dict(v) for v in d["verdicts"]))


def verdict(scores: pd.DataFrame, method: str, n_boot: int = 2000, seed: int = 0,
            split: str = "validation") -> AFMVerdict:
    """:class:`AFMVerdict` of ``method`` against the mean shape and carving, from
    :func:`structure_scores`, with ``n_boot`` bootstrap resamples of the structures."""
    rng = np.random.default_rng(seed)
    s = scores[scores.split == split]
    margins = []
    for baseline in (MEAN_SHAPE, CARVING):
        for v in sorted(s.views.unique()):
            a = s[(s.method == method) & (s.views == v)].set_index("structure")["iou"]
            b = s[(s.method == baseline) & (s.views == v)].set_index("structure")["iou"]
            diff = (a - b.loc[a.index]).to_numpy()
            boot = diff[rng.integers(0, len(diff), (n_boot, len(diff)))].mean(axis=1)
            low, high = np.quantile(boot, [0.025, 0.975])
            margins.append(Margin(method, baseline, int(v), float(a.mean()), float(b.mean()),
                                  float(diff.mean()), float(low), float(high)))
    return AFMVerdict(method, tuple(margins))
