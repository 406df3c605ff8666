"""Chapter glue for map sharpening with a VAE (Thornton, 2025), against the U-Net and B-factors.

The data are the super-resolution chapter's, reused from :mod:`cryolab.superres`:
the same X-ray entries, the same split by entry, the same noise model and the same random
stream, so the test maps here are the test maps there. On top of them:

- :func:`load_data`: train / validation / test pairs (validation entries are taken from the
  end of the training entries and kept out of the VAE's training);
- :func:`zscore_pairs`: the VAE sees z-scored maps (:func:`cryolab.normalise.zscore`: mean 0,
  standard deviation 1 per map), as
  in the study's companion work; every metric of the chapter ignores that affine change;
- :func:`train_vae`: a :class:`~cryolab.nn.vae.VAE3D` trained with
  :func:`~cryolab.nn.vae.vae_step`, validated by masked RSCC after every epoch;
- :func:`unet_for`: the super-resolution chapter's U-Net, from its checkpoint when present,
  otherwise trained here with that chapter's functions;
- :func:`compare_methods`: one row per (entry, method) of RSCC, PCC, FSC resolution and
  EMRinger, through :func:`cryolab.superres.evaluate`;
- :func:`uncertainty_agreement`: how well the VAE's per-voxel spread tracks its error;
  :func:`calibration_scale`, :func:`reliability` and :func:`plot_reliability`: one scale fitted
  on validation maps that makes the spread a calibrated standard deviation, and the check;
- :func:`vae_predictor` and :func:`shipped_vae`: a VAE (this run's or the shipped one) as a
  map-to-map function, for the test entries and (through :func:`cryolab.superres.on_real`)
  the real maps of :func:`cryolab.superres.load_real_map`;
- :class:`SharpeningRun`: the numbers of one run and the verdicts read from them;
  :meth:`SharpeningRun.to_dict` is the schema of the chapter's ``metrics.json``.

The ``cryolab sharpen --method vae|bfactor`` command applies this chapter's models through
:func:`cryolab.apply.apply_model` and :func:`cryolab.sharpen.bfactor_sharpen`.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import metrics
from .. import superres as sr
from ..errors import ConfigError
from ..io import Volume, atoms_of
from ..nn.unet3d import UNet3D
from ..nn.vae import VAE3D, sample_volume, vae_step
from ..normalise import zscore
from ..results import repo_root
from ..tiles import predict_volume
from ..train import History, Trainer, load_model

__all__ = [
    "data_files",
    "STUDY",
    "SharpeningProfile",
    "PROFILES",
    "Data",
    "load_data",
    "zscore_pairs",
    "sharpening_resolution",
    "masked_rscc",
    "train_vae",
    "predict_vae",
    "predict_unet",
    "unet_for",
    "compare_methods",
    "method_table",
    "uncertainty_agreement",
    "uncertainty_table",
    "plot_guinier",
    "shipped_vae",
    "vae_predictor",
    "calibration_scale",
    "reliability",
    "plot_reliability",
    "SharpeningRun",
]

#: The study's numbers: the validation RSCC plateau of the VAE, the epoch it was reached,
#: and the RSCC the authors set as the bar for super-resolution.
STUDY = {"vae_val_rscc_plateau": 0.71, "plateau_epoch": 40, "superres_bar": 0.91}
#: The super-resolution chapter's notebook, whose U-Net checkpoint is reused when present.
SUPERRES_NB = "02_superres_unet3d"


@dataclass(frozen=True)
class SharpeningProfile:
    """Sizes of one run of the chapter.

    Attributes:
        data: the super-resolution chapter's profile whose pairs, split and U-Net are reused.
        n_val: training entries held out to validate the VAE after every epoch.
        patch: VAE training and inference patch edge (voxels of 1 Å).
        patches_per_epoch, batch, epochs, lr: VAE training schedule (Adam).
        depth, base, latent_channels: :class:`~cryolab.nn.vae.VAE3D` sizes.
        beta: weight of the KL term.
        reconstruction: ``"mse"`` or ``"l1"``.
        n_samples: decodes per input for the uncertainty map.
        n_uncertainty: test entries sampled for the uncertainty maps.
        stride: sliding-window stride at inference, voxels (None: half a patch; the stride
            used is :attr:`infer_stride`).
        fit_low: low-resolution end of the Guinier fit, Å.
        seed: base seed of VAE training.
    """

    data: sr.SuperResProfile
    n_val: int
    patch: int
    patches_per_epoch: int
    epochs: int
    batch: int = 4
    lr: float = 1e-3
    depth: int = 2
    base: int = 16
    latent_channels: int = 8
    beta: float = 1e-3
    reconstruction: str = "mse"
    n_samples: int = 8
    n_uncertainty: int = 3
    stride: int | None = None
    fit_low: float = 10.0
    seed: int = 0

    @property
    def infer_stride(self) -> int:
        """The sliding-window stride used at inference: ``stride`` or half a patch."""
        return self.stride or self.patch // 2

    def vae_hparams(self, skips: bool) -> dict:
        """Constructor arguments of the VAE (plain or with skips)."""
        return dict(depth=self.depth, base=self.base, latent_channels=self.latent_channels,
                    skips=skips)

    def config(self, skips: bool) -> dict:
        """The VAE's training settings (stored in its checkpoint)."""
        return {
            **self.vae_hparams(skips), "data": self.data.config(), "n_val": self.n_val,
            "patch": self.patch, "patches_per_epoch": self.patches_per_epoch,
            "epochs": self.epochs, "batch": self.batch, "lr": self.lr, "beta": self.beta,
            "reconstruction": self.reconstruction, "seed": self.seed,
        }


PROFILES = {
    "smoke": SharpeningProfile(
        data=sr.PROFILES["smoke"], n_val=1, patch=16, patches_per_epoch=32, epochs=4,
        depth=2, base=8, latent_channels=4, n_samples=3, n_uncertainty=1, stride=16,
        lr=3e-3,
    ),
    "book": SharpeningProfile(
        data=sr.PROFILES["book"], n_val=4, patch=24, patches_per_epoch=128, epochs=10,
        depth=2, base=8, latent_channels=16, n_samples=6, n_uncertainty=2, lr=2e-3,
    ),
    "pretrained": SharpeningProfile(
        data=sr.PROFILES["pretrained"], n_val=6, patch=24, patches_per_epoch=128, epochs=150,
        depth=2, base=8, latent_channels=16, n_samples=8, n_uncertainty=2, lr=2e-3,
    ),
    "paper": SharpeningProfile(
        data=sr.PROFILES["paper"], n_val=10, patch=64, patches_per_epoch=800, epochs=60,
        depth=3, base=32, latent_channels=16, n_samples=16, lr=2e-4,
    ),
}


# ------------------------------------------------------------------------------------- data


@dataclass
class Data:
    """The chapter's pairs: ``train`` (VAE training), ``val`` (VAE validation), ``test``;
    ``unet_train`` is the super-resolution chapter's full training set (train + val)."""

    train: list[sr.Pair]
    val: list[sr.Pair]
    test: list[sr.Pair]

    @property
    def unet_train(self) -> list[sr.Pair]:
        return self.train + self.val


def load_data(profile: SharpeningProfile) -> Data:
    """The super-resolution chapter's pairs, made exactly as its notebook makes them."""
    cfg = profile.data
    if not 0 < profile.n_val < cfg.n_train:
        raise ConfigError(f"n_val must lie in (0, {cfg.n_train}), got {profile.n_val}")
    entries = sr.load_entries(max_resolution=2.0)
    train_entries, test_entries = sr.split_by_entry(entries, cfg.n_test, cfg.n_train)
    rng = np.random.default_rng(cfg.seed)
    train = sr.make_pairs(train_entries, cfg.noise, rng)
    test = sr.make_pairs(test_entries, cfg.noise, rng)
    return Data(train[: -profile.n_val], train[-profile.n_val :], test)


def zscore_pairs(pairs: Sequence[sr.Pair]) -> list[sr.Pair]:
    """The pairs with both maps z-scored (same grids, same entries)."""
    return [sr.Pair(p.entry, p.target.with_data(zscore(p.target.data)),
                    p.degraded.with_data(zscore(p.degraded.data))) for p in pairs]


def sharpening_resolution(pairs: Sequence[sr.Pair], threshold: float = 0.143) -> float:
    """Median FSC resolution (Å) of degraded against target maps: the 'map resolution' that
    B-factor sharpening fits to and low-passes at. Use training pairs only."""
    return float(np.median([
        metrics.fsc_resolution(p.degraded.data, p.target.data, p.target.voxel_size, threshold)
        for p in pairs
    ]))


def _mask(pair: sr.Pair, radius: float = 2.0) -> np.ndarray:
    t = pair.target
    return metrics.model_mask(t.shape, t.voxel_size, t.origin,
                              atoms_of(pair.entry.structure, hydrogens=False).xyz, radius)


def masked_rscc(pair: sr.Pair, prediction: np.ndarray, radius: float = 2.0) -> float:
    """RSCC of a prediction against the target within ``radius`` Å of the model's atoms."""
    return metrics.rscc(prediction, pair.target.data, _mask(pair, radius))


# ------------------------------------------------------------------------------------ models


def predict_vae(model: VAE3D, volume: Volume, profile: SharpeningProfile,
                device: str | None = None, stride: int | None = None) -> Volume:
    """The VAE's decode of ``z = μ`` over a whole (z-scored) map, tile by tile (``stride``
    defaults to the profile's)."""
    out = predict_volume(model, volume.data, patch=profile.patch,
                         stride=stride or profile.infer_stride, weight="gaussian",
                         batch_size=4, device=device)
    return volume.with_data(out)


def predict_unet(model: UNet3D, volume: Volume, profile: SharpeningProfile,
                 device: str | None = None) -> Volume:
    """The super-resolution chapter's :func:`~superres.predict_map`, with this profile's
    inference stride (the same tiling as the VAEs)."""
    return sr.predict_map(model, volume, replace(profile.data, stride=profile.infer_stride),
                          device)


def train_vae(
    train: Sequence[sr.Pair], val: Sequence[sr.Pair], profile: SharpeningProfile, skips: bool,
    checkpoint: str | Path | None = None, device: str | None = None, progress: bool = True,
) -> tuple[VAE3D, History]:
    """Train a VAE on z-scored pairs; ``val_rscc`` (mean masked RSCC over the validation maps,
    decoded from ``μ`` with tiles that do not overlap, to save time) is logged after every
    epoch beside loss, reconstruction and KL."""
    torch.manual_seed(profile.seed)
    model = VAE3D(**profile.vae_hparams(skips))
    train_z, val_z = zscore_pairs(train), zscore_pairs(val)
    batches = sr.training_batches(
        train_z, replace(profile.data, patch=profile.patch, batch=profile.batch,
                         patches_per_epoch=profile.patches_per_epoch),
    )

    def validate(trainer: Trainer) -> dict[str, float]:
        scores = [masked_rscc(p, predict_vae(trainer.model, p.degraded, profile,
                                             stride=profile.patch).data)
                  for p in val_z]
        return {"val_rscc": float(np.mean(scores))}

    trainer = Trainer(
        model, torch.optim.Adam(model.parameters(), lr=profile.lr),
        vae_step(profile.beta, profile.reconstruction), checkpoint=checkpoint,
        config=profile.config(skips), seed=profile.seed, device=device,
    )
    history = trainer.fit(batches, profile.epochs, validate=validate, progress=progress)
    return trainer.model.eval(), history


def unet_for(
    profile: SharpeningProfile, train: Sequence[sr.Pair], checkpoint: str | Path,
    profile_name: str, device: str | None = None, progress: bool = True,
) -> tuple[UNet3D, str]:
    """The super-resolution chapter's U-Net and where it came from.

    Uses ``results/02_superres_unet3d/<profile_name>/unet3d.pt`` when it holds a run with the
    same settings: loaded as is when finished; copied to ``checkpoint`` and resumed there (the
    trainer resumes exactly) when that chapter's run is still going. Without it, the U-Net is
    trained here exactly as that chapter does (same pairs, Dice loss, Adam settings, seed).
    """
    cfg = profile.data
    checkpoint = Path(checkpoint)
    theirs = repo_root() / "results" / SUPERRES_NB / profile_name / "unet3d.pt"
    source = "trained here with the super-resolution chapter's functions"
    if theirs.is_file():
        state = torch.load(theirs, map_location="cpu", weights_only=True)
        if state.get("config") == cfg.config():
            if state.get("epoch") == cfg.epochs:
                model = load_model(theirs, UNet3D, device=device)
                return model, f"loaded {theirs.name} from {SUPERRES_NB}"
            mine = (torch.load(checkpoint, map_location="cpu", weights_only=True)
                    if checkpoint.is_file() else {})
            if mine.get("config") != cfg.config() or mine.get("epoch", 0) < state["epoch"]:
                checkpoint.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(theirs, checkpoint)
            source = f"resumed from {SUPERRES_NB}'s checkpoint after epoch {state['epoch']}"
    model, _ = sr.train_unet3d(train, cfg, checkpoint, device=device, progress=progress)
    return model, source


# -------------------------------------------------------------------------------- evaluation


def compare_methods(pair: sr.Pair, predictions: dict[str, Volume]) -> list[dict]:
    """Rows ``{entry, method, rscc, pcc, fsc05, emringer}`` for the degraded input, every
    prediction, and (EMRinger only) the target, via :func:`superres.evaluate`.

    Predictions may be in other units than the target (z-scored, say): every score here is
    unchanged by ``a·x + b`` with ``a > 0``.
    """
    rows = []
    for i, (method, volume) in enumerate(predictions.items()):
        scores = sr.evaluate(pair, volume)
        if i == 0:
            rows.append(_row(pair, "degraded input", scores, "input"))
            rows.append({"entry": pair.entry.pdb_id, "method": "target (model map)",
                         "rscc": 1.0, "pcc": 1.0, "fsc05": np.nan,
                         "emringer": scores["emringer_truth"]})
        rows.append(_row(pair, method, scores, "prediction"))
    return rows


def _row(pair: sr.Pair, method: str, scores: dict, key: str) -> dict:
    return {"entry": pair.entry.pdb_id, "method": method, "rscc": scores[f"rscc_{key}"],
            "pcc": scores[f"pcc_{key}"], "fsc05": scores[f"fsc05_{key}"],
            "emringer": scores[f"emringer_{key}"]}


def method_table(rows: Sequence[dict]) -> pd.DataFrame:
    """Mean of each score per method over the entries, in the order methods first appear."""
    df = pd.DataFrame(list(rows))
    order = list(dict.fromkeys(df["method"]))
    table = df.groupby("method", sort=False)[["rscc", "pcc", "fsc05", "emringer"]].mean()
    return table.loc[order].rename(columns={
        "rscc": "RSCC (masked)", "pcc": "PCC", "fsc05": "FSC-0.5 resolution (Å)",
        "emringer": "EMRinger"})


def uncertainty_agreement(model: VAE3D, pair: sr.Pair, profile: SharpeningProfile,
                          seed: int = 0) -> dict:
    """Sample the VAE on a (z-scored) pair: mean and std maps, the error ``|mean − target|``,
    and the Pearson correlation of std and error inside the model mask and over the box."""
    mean, std = sample_volume(model, pair.degraded.data, n=profile.n_samples,
                              patch=profile.patch, stride=profile.infer_stride, seed=seed)
    error = np.abs(mean - pair.target.data)
    mask = _mask(pair)
    return {
        "mean": pair.target.with_data(mean), "std": pair.target.with_data(std),
        "error": pair.target.with_data(error),
        "corr_mask": metrics.pcc(std, error, mask), "corr_box": metrics.pcc(std, error),
        "std_mean": float(std.mean()), "error_mean": float(error.mean()),
    }


def uncertainty_table(agreement: Mapping[str, Sequence[dict]]) -> pd.DataFrame:
    """Means over the entries of :func:`uncertainty_agreement`'s numbers, one row per model
    (``{label: [agreement of each entry]}``)."""
    return pd.DataFrame({
        label: {"corr(std, |error|) in the mask": np.mean([a["corr_mask"] for a in runs]),
                "corr(std, |error|) over the box": np.mean([a["corr_box"] for a in runs]),
                "mean std (z units)": np.mean([a["std_mean"] for a in runs]),
                "mean |error| (z units)": np.mean([a["error_mean"] for a in runs])}
        for label, runs in agreement.items()}).T


def vae_predictor(model: VAE3D, profile: SharpeningProfile,
                  device: str | None = None) -> Callable[[Volume], Volume]:
    """``fn(map) -> map``: a VAE on a 1 Å map, z-scored first (every score of the chapter
    ignores that affine change); :func:`cryolab.superres.on_real` makes it a real-map
    method."""
    return lambda volume: predict_vae(model, volume.with_data(zscore(volume.data)), profile,
                                      device)


def shipped_vae(device: str | None = None) -> Callable[[Volume], Volume] | None:
    """The shipped VAE (:mod:`cryolab.weights`, ``"vae"``) as :func:`vae_predictor`; None
    when not shipped."""
    from .. import weights

    if "vae" not in weights.available():
        return None
    return vae_predictor(weights.load("vae", device=device), PROFILES["pretrained"], device)


def calibration_scale(errors: np.ndarray, spreads: np.ndarray) -> float:
    """The factor ``c`` that makes ``c·σ`` a calibrated standard deviation of the error:
    ``c = sqrt(mean(e²) / mean(σ²))``, so that ``e / (c σ)`` has unit variance. Fit it on
    validation data, never on the data it is judged on."""
    return float(np.sqrt(np.mean(np.square(errors)) / max(np.mean(np.square(spreads)), 1e-12)))


def reliability(errors: np.ndarray, spreads: np.ndarray, scale: float = 1.0,
                levels: Sequence[float] = (0.5, 0.68, 0.8, 0.9, 0.95)) -> pd.DataFrame:
    """Coverage of Gaussian intervals ``± z·scale·σ`` of the given nominal levels: for a
    calibrated spread the observed fraction of errors inside equals the level."""
    from scipy.stats import norm

    e, s = np.abs(np.ravel(errors)), scale * np.ravel(spreads)
    rows = [{"nominal": q, "observed": float(np.mean(e <= norm.ppf(0.5 + q / 2) * s))}
            for q in levels]
    return pd.DataFrame(rows)


def plot_reliability(curves: dict):  # noqa: ANN201 - a matplotlib figure
    """Observed against nominal coverage, ``{label: reliability DataFrame}``; the diagonal
    is perfect calibration."""
    import matplotlib.pyplot as plt

    from ..viz import use_style

    use_style()
    fig, ax = plt.subplots(figsize=(4, 4), constrained_layout=True)
    ax.plot([0, 1], [0, 1], color="0.6", lw=0.8, ls="--", label="calibrated")
    for label, df in curves.items():
        ax.plot(df["nominal"], df["observed"], marker="o", label=label)
    ax.set_xlabel("nominal coverage of ±z·σ")
    ax.set_ylabel("observed fraction of errors inside")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(frameon=False)
    return fig


def plot_guinier(fits: dict):
    """Guinier plots (``ln |F|`` vs s²) with the fitted lines, ``{label: GuinierFit}``."""
    import matplotlib.pyplot as plt

    from ..viz import use_style

    use_style()
    fig, ax = plt.subplots(figsize=(5.5, 3.5), constrained_layout=True)
    for label, fit in fits.items():
        (line,) = ax.plot(fit.s2, fit.ln_amplitude, lw=1,
                          label=f"{label} (B = {fit.bfactor:.0f} Å²)")
        s2 = fit.s2[fit.fitted]
        ax.plot(s2, fit.line(s2), ls="--", color=line.get_color())
    first = next(iter(fits.values()))
    for d in (first.low, first.high):
        ax.axvline(1 / d**2, color="0.6", lw=0.8)
    ax.set_xlabel("s² (1/Å²)")
    ax.set_ylabel("ln mean |F|")
    ax.legend(frameon=False)
    return fig


# ------------------------------------------------------------------------------ the run

#: The four columns of :func:`method_table` and whether a higher value is better.
_BETTER_HIGH = {"RSCC (masked)": True, "PCC": True, "FSC-0.5 resolution (Å)": False,
                "EMRinger": True}


@dataclass(frozen=True)
class SharpeningRun:
    """The numbers one run of the chapter produces, and the verdicts read from them;
    :meth:`to_dict` is the schema of its ``metrics.json`` (read by the tests and the results
    overview).

    Attributes:
        profile: the run's settings.
        test_entries, val_entries: PDB ids of the test and validation entries.
        resolution: :func:`sharpening_resolution` of the training pairs, Å.
        bfactors: Guinier B (Å²) of the first test entry's ``"target"`` and
            ``"degraded input"``.
        histories: the training histories, ``{"VAE": ..., "VAE with skips": ...}`` (``loss``,
            ``reconstruction``, ``kl``, ``val_rscc`` per epoch).
        unet_source: where the U-Net came from (:func:`unet_for`).
        table: :func:`method_table` of the test entries.
        uncertainty: :func:`uncertainty_table` of the test entries.
        calibration: :func:`calibration_scale` fitted on the validation maps.
        reliability: ``{label: reliability table}`` (:func:`reliability`) on the test maps.
        real_table: :func:`cryolab.superres.real_map_table` of the real maps.
        real_verdicts: ``{method: RealVerdict}`` on the real maps.
        timings: seconds by step.
        real_choice: ``{map: variant}``: how the shipped VAE would have been applied to each
            real map, chosen on the other four (:func:`cryolab.superres.leave_one_map_out`);
            empty without a shipped VAE.
    """

    profile: SharpeningProfile
    test_entries: list[str]
    val_entries: list[str]
    resolution: float
    bfactors: Mapping[str, float]
    histories: Mapping[str, History]
    unet_source: str
    table: pd.DataFrame
    uncertainty: pd.DataFrame
    calibration: float
    reliability: Mapping[str, pd.DataFrame]
    real_table: pd.DataFrame
    real_verdicts: Mapping[str, sr.RealVerdict]
    timings: Mapping[str, float]
    real_choice: Mapping[str, str] = field(default_factory=dict)

    @property
    def last_val_rscc(self) -> dict[str, float]:
        """Validation RSCC after the last epoch, by model."""
        return {label: h["val_rscc"][-1] for label, h in self.histories.items()}

    @property
    def best_val_rscc(self) -> dict[str, float]:
        """Best validation RSCC over the epochs, by model."""
        return {label: max(h["val_rscc"]) for label, h in self.histories.items()}

    @property
    def n_reaching_bar(self) -> int:
        """How many VAE variants end at or above the study's super-resolution bar (0.91)."""
        return sum(v >= STUDY["superres_bar"] for v in self.last_val_rscc.values())

    def wins(self, method: str) -> int:
        """On how many of the table's four scores ``method`` is the best of the methods this
        run trains (the input, the target and the shipped models left out)."""
        methods = self.table.drop(index=["degraded input", "target (model map)"],
                                  errors="ignore")
        methods = methods[~methods.index.str.startswith("shipped")]
        return sum((methods[c].idxmax() if high else methods[c].idxmin()) == method
                   for c, high in _BETTER_HIGH.items())

    @property
    def real_verdict(self) -> sr.RealVerdict:
        """The verdict on the real maps: the shipped VAE's when shipped, else this run's VAE
        with skips."""
        return self.real_verdicts.get("shipped VAE", self.real_verdicts["VAE with skips"])

    def to_dict(self) -> dict:
        """The ``metrics.json`` record of the run."""
        hist = self.histories["VAE"]
        return {
            "profile_settings": self.profile.config(False),
            "test_entries": list(self.test_entries),
            "val_entries": list(self.val_entries),
            "sharpening_resolution": self.resolution,
            "guinier_bfactor_input": self.bfactors["degraded input"],
            "guinier_bfactor_target": self.bfactors["target"],
            "vae_loss_first": hist["loss"][0],
            "vae_loss_last": hist["loss"][-1],
            "vae_reconstruction_first": hist["reconstruction"][0],
            "vae_reconstruction_last": hist["reconstruction"][-1],
            "vae_kl_last": hist["kl"][-1],
            "vae_kl_finite": bool(np.all(np.isfinite(hist["kl"]))),
            "val_rscc": {label: h["val_rscc"] for label, h in self.histories.items()},
            "unet_source": self.unet_source,
            "table": {method: {k: float(v) for k, v in row.items()}
                      for method, row in self.table.iterrows()},
            "rscc": self.table["RSCC (masked)"].to_dict(),
            "uncertainty_agreement": {
                label: {"corr_mask": float(row["corr(std, |error|) in the mask"]),
                        "corr_box": float(row["corr(std, |error|) over the box"])}
                for label, row in self.uncertainty.iterrows()},
            "calibration_scale": self.calibration,
            "reliability": {k: v.to_dict(orient="records") for k, v in self.reliability.items()},
            "real_maps": self.real_table.to_dict(orient="records"),
            "real_verdicts": {m: v.to_dict() for m, v in self.real_verdicts.items()},
            "real_choice": dict(self.real_choice),
            "study": STUDY,
            "timings": dict(self.timings),
        }


def data_files() -> list[str]:
    """The registered files this chapter reads: chapter 2's X-ray structures."""
    return sorted(sr.entry_files())
