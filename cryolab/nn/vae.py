"""A 3D convolutional variational autoencoder (VAE) for map sharpening (Thornton, 2025).

The network reads a patch of a low-resolution map and writes a patch of the sharper map on the
same grid, through a *stochastic bottleneck*:

1. the **encoder** (3×3×3 convolutions, then 4×4×4 convolutions at stride 2, ``depth`` times;
   every convolution followed by batch normalisation and a leaky ReLU) turns the (1, N, N, N)
   patch into features on a grid ``2**depth`` times coarser;
2. two 1×1×1 convolutions read from those features the mean ``μ`` and the log-variance
   ``log σ²`` of a Gaussian over a *latent map* of ``latent_channels`` channels on that coarse
   grid — the approximate posterior ``q(z | x) = N(μ, σ²)``;
3. **reparameterisation**: ``z = μ + σ·ε`` with ``ε ~ N(0, 1)``, so that the sampling step is
   differentiable in ``μ`` and ``σ``;
4. the **decoder** (4×4×4 transposed convolutions at stride 2, each followed by a 3×3×3
   convolution) brings ``z`` back to the input grid, and a 3×3×3 convolution writes the map.

The loss of one batch is ``reconstruction + β·KL``: the reconstruction is the mean squared error
(``"mse"``) or mean absolute error (``"l1"``) per voxel between output and target, and
``KL = Σ ½(μ² + σ² − log σ² − 1)`` summed over the latent elements and divided by the number of
output voxels, so that both terms are "per voxel" and ``β`` alone sets their balance
(:func:`vae_loss`). ``β = 0`` is a plain (noisy) autoencoder; a large ``β`` squeezes the latent
towards the prior N(0, 1) and the decoder towards the average patch.

``skips=True`` is the variant with U-Net-like skip connections: each decoder level also reads
the encoder features of the same size. Detail can then flow *around* the latent bottleneck, so
the latent (and the KL term) matters much less, and so does its sampling noise.

:meth:`VAE3D.sample` decodes one input several times with fresh ``ε`` and returns the per-voxel
mean and standard deviation: an uncertainty map. :func:`sample_volume` does the same for a
whole map tile by tile. :func:`vae_step` is the step function for :class:`cryolab.train.Trainer`;
it logs the loss, the reconstruction and the KL term separately.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812 - the usual torch alias

__all__ = ["VAE3D", "VAEOutput", "kl_divergence", "vae_loss", "vae_step", "sample_volume"]

RECONSTRUCTION = {"mse": F.mse_loss, "l1": F.l1_loss}
#: Initial bias of the log-variance layer.
INIT_LOGVAR = -5.0


def _block(conv: nn.Module, c_out: int) -> nn.Sequential:
    return nn.Sequential(conv, nn.BatchNorm3d(c_out), nn.LeakyReLU(0.2, inplace=True))


def _conv(c_in: int, c_out: int) -> nn.Sequential:
    return _block(nn.Conv3d(c_in, c_out, 3, padding=1), c_out)


def _down(c_in: int, c_out: int) -> nn.Sequential:
    return _block(nn.Conv3d(c_in, c_out, 4, stride=2, padding=1), c_out)


def _up(c_in: int, c_out: int) -> nn.Sequential:
    return _block(nn.ConvTranspose3d(c_in, c_out, 4, stride=2, padding=1), c_out)


@dataclass
class VAEOutput:
    """One pass of the VAE: the decoded map and the posterior it was drawn from.

    Attributes:
        reconstruction: (B, 1, N, N, N) decoded map.
        mu: (B, latent_channels, n, n, n) posterior mean, ``n = N / 2**depth``.
        logvar: posterior log-variance, same shape as ``mu``.
    """

    reconstruction: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor


class VAE3D(nn.Module):
    """3D convolutional VAE from a (B, 1, N, N, N) map to a (B, 1, N, N, N) map.

    Args:
        depth: number of stride-2 levels; N must be divisible by ``2**depth``.
        base: channels of the first level, doubled at each level.
        latent_channels: channels of the latent map (on the grid ``N / 2**depth``).
        skips: concatenate the encoder features of each level into the decoder (U-Net-like
            variant; detail then bypasses the latent bottleneck).
    """

    def __init__(self, depth: int = 2, base: int = 16, latent_channels: int = 8,
                 skips: bool = False) -> None:
        super().__init__()
        if depth < 1 or base < 1 or latent_channels < 1:
            raise ValueError(f"bad VAE3D sizes: depth {depth}, base {base}, "
                             f"latent_channels {latent_channels}")
        self.hparams = dict(depth=depth, base=base, latent_channels=latent_channels, skips=skips)
        self.divisor = 2**depth
        self.skips = skips
        widths = [base * 2**i for i in range(depth + 1)]  # level 0 = input grid
        self.stem = _conv(1, widths[0])
        self.encoder = nn.ModuleList(
            nn.Sequential(_down(widths[i], widths[i + 1]), _conv(widths[i + 1], widths[i + 1]))
            for i in range(depth)
        )
        self.to_mu = nn.Conv3d(widths[-1], latent_channels, 1)
        self.to_logvar = nn.Conv3d(widths[-1], latent_channels, 1)
        # start with a narrow posterior (σ ≈ 0.08): with σ = 1 the latent is mostly noise at
        # first, the decoder learns to ignore it and the posterior collapses onto the prior
        nn.init.constant_(self.to_logvar.bias, INIT_LOGVAR)
        self.from_latent = _conv(latent_channels, widths[-1])
        self.up = nn.ModuleList(_up(widths[i + 1], widths[i]) for i in reversed(range(depth)))
        factor = 2 if skips else 1
        self.merge = nn.ModuleList(
            _conv(factor * widths[i], widths[i]) for i in reversed(range(depth))
        )
        self.head = nn.Conv3d(widths[0], 1, 3, padding=1)

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 5 or x.shape[1] != 1:
            raise ValueError(f"VAE3D takes (B, 1, N, N, N) maps, got shape {tuple(x.shape)}")
        if any(n % self.divisor for n in x.shape[2:]):
            raise ValueError(
                f"VAE3D(depth={self.hparams['depth']}) needs a grid divisible by "
                f"{self.divisor}, got {tuple(x.shape[2:])}"
            )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """``(μ, log σ², features)``; ``features`` are the encoder outputs of each level."""
        self._check(x)
        h = self.stem(x)
        features = [h]
        for level in self.encoder:
            h = level(h)
            features.append(h)
        logvar = self.to_logvar(h).clamp(-20.0, 10.0)  # keeps exp() finite early in training
        return self.to_mu(h), logvar, features

    def decode(self, z: torch.Tensor, features: list[torch.Tensor] | None = None) -> torch.Tensor:
        """The map decoded from a latent ``z`` (and the encoder features when ``skips``)."""
        if self.skips and features is None:
            raise ValueError("VAE3D(skips=True) needs the encoder features to decode")
        h = self.from_latent(z)
        for i, (up, merge) in enumerate(zip(self.up, self.merge, strict=True)):
            h = up(h)
            if self.skips:
                h = torch.cat([h, features[-2 - i]], dim=1)
            h = merge(h)
        return self.head(h)

    @staticmethod
    def reparameterise(mu: torch.Tensor, logvar: torch.Tensor,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """``z = μ + σ·ε``, ``ε ~ N(0, 1)`` (from ``generator`` when given)."""
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps

    def run(self, x: torch.Tensor, sample: bool = True,
            generator: torch.Generator | None = None) -> VAEOutput:
        """Encode, draw ``z`` (or take ``z = μ`` when ``sample`` is False) and decode."""
        mu, logvar, features = self.encode(x)
        z = self.reparameterise(mu, logvar, generator) if sample else mu
        return VAEOutput(self.decode(z, features), mu, logvar)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The decoded map: a sample while training, the decode of ``μ`` in eval mode."""
        return self.run(x, sample=self.training).reconstruction

    @torch.no_grad()
    def sample(self, x: torch.Tensor, n: int = 8,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-voxel mean and standard deviation of ``n`` decodes of ``x`` with fresh ``ε``.

        The encoder runs once; only the latent draw and the decoder are repeated.
        """
        if n < 2:
            raise ValueError(f"sample needs n ≥ 2 decodes for a standard deviation, got {n}")
        mu, logvar, features = self.encode(x)
        draws = torch.stack([
            self.decode(self.reparameterise(mu, logvar, generator), features) for _ in range(n)
        ])
        return draws.mean(dim=0), draws.std(dim=0)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, 1)) summed over all latent elements of each sample, shape (B,)."""
    kl = 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1.0)
    return kl.flatten(1).sum(dim=1)


def vae_loss(out: VAEOutput, target: torch.Tensor, beta: float = 1e-3,
             reconstruction: str = "mse") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(loss, reconstruction, kl)`` with ``loss = reconstruction + β·kl``.

    ``reconstruction`` is the per-voxel mean squared (``"mse"``) or absolute (``"l1"``) error;
    ``kl`` is :func:`kl_divergence` divided by the voxels of one output patch and averaged
    over the batch (nats per voxel).
    """
    if reconstruction not in RECONSTRUCTION:
        raise ValueError(f"reconstruction must be one of {sorted(RECONSTRUCTION)}, "
                         f"not {reconstruction!r}")
    rec = RECONSTRUCTION[reconstruction](out.reconstruction, target)
    kl = (kl_divergence(out.mu, out.logvar) / target[0].numel()).mean()
    return rec + beta * kl, rec, kl


def vae_step(beta: float = 1e-3, reconstruction: str = "mse"):  # noqa: ANN201 - a StepFn
    """Step function for :class:`cryolab.train.Trainer` on ``(input, target)`` batches.

    Logs ``loss``, ``reconstruction`` and ``kl`` (see :func:`vae_loss`).
    """
    if reconstruction not in RECONSTRUCTION:
        raise ValueError(f"reconstruction must be one of {sorted(RECONSTRUCTION)}, "
                         f"not {reconstruction!r}")

    def step(trainer, batch) -> dict[str, float]:  # noqa: ANN001 - Trainer, batch
        x, y = trainer.to_device(batch)
        with trainer.autocast():
            out = trainer.model.run(x, sample=True)
        out = VAEOutput(out.reconstruction.float(), out.mu.float(), out.logvar.float())
        loss, rec, kl = vae_loss(out, y, beta, reconstruction)
        trainer.optimise(loss)
        return {"loss": loss.item(), "reconstruction": rec.item(), "kl": kl.item()}

    return step


def sample_volume(
    model: VAE3D, volume: np.ndarray, n: int = 8, patch: int = 32, stride: int | None = None,
    seed: int = 0, batch_size: int = 4, device: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation maps of ``n`` decodes of a whole map, tile by tile.

    Each tile is encoded once and decoded ``n`` times; mean and second moment are blended
    across overlapping tiles with Gaussian weights (:func:`cryolab.tiles.sliding_window`), so
    ``std = sqrt(E[x²] − E[x]²)`` per voxel. The same ``seed`` gives the same maps.
    """
    from ..tiles import sliding_window
    from ..train import pick_device

    dev = pick_device(device) if device else next(model.parameters()).device
    model = model.to(dev).eval()
    generator = torch.Generator(device=dev).manual_seed(seed)
    moments: list[np.ndarray] = []

    def draw(cubes: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(cubes[:, None])).to(dev)
        mean, std = model.sample(x, n, generator)
        m2 = std.pow(2) * (n - 1) / n + mean.pow(2)  # unbiased std back to E[x²]
        moments.append(m2[:, 0].float().cpu().numpy())
        return mean[:, 0].float().cpu().numpy()

    def second(cubes: np.ndarray) -> np.ndarray:
        return moments.pop(0)

    stride = stride or patch // 2
    mean = sliding_window(volume, draw, patch, stride, "gaussian", batch_size)
    m2 = sliding_window(volume, second, patch, stride, "gaussian", batch_size)
    std = np.sqrt(np.clip(m2 - mean.astype(np.float64) ** 2, 0.0, None))
    return mean, std.astype(np.float32)
