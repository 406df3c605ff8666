"""PoseVox: occupancy from AFM views *with their orientations*, by refining a soft visual hull.

Pix2Vox++ must guess from the pixels where each view looks from. Space carving
(:mod:`cryolab.carving`) is told, and carves the grid with every view's height image. PoseVox
gives a network what carving has: each view's heights are back-projected into the canonical
grid with the view's known orientation (:func:`cryolab.carving.backproject`: the smallest and
the mean, over views, of each voxel's depth below the measured surface), and a small 3D U-Net
turns that evidence into occupancy. Its input channels are

0. the soft visual hull (> 0 inside every view's surface and above every substrate),
1. the mean depth below the surfaces over views,
2. the prior: the mean occupancy of the training targets (a buffer stored with the weights),
3. ``1 / V`` everywhere, so that the network knows how much to trust the hull over the prior.

The fusion is a minimum and a mean over views, so any number of views works, in any order.
The network learns what carving cannot: to undo the tip's dilation, to fill what no view
sees from the prior, and to weigh the two by the number of views.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ..afm import AFMViews
from ..carving import backproject
from ..errors import ConfigError

__all__ = ["PoseVox", "EVIDENCE_CHANNELS", "pose_predict", "reconstruct"]

#: channels of :func:`cryolab.carving.backproject` (soft hull, mean depth)
EVIDENCE_CHANNELS = 2


def _block(c_in: int, c_out: int) -> nn.Sequential:
    """Two 3×3×3 convolutions with batch norm and ReLU, keeping the grid size."""
    return nn.Sequential(
        nn.Conv3d(c_in, c_out, 3, 1, 1, bias=False), nn.BatchNorm3d(c_out), nn.ReLU(),
        nn.Conv3d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm3d(c_out), nn.ReLU(),
    )


class PoseVox(nn.Module):
    """A 3D U-Net from back-projected AFM evidence to occupancy logits.

    Args:
        grid: side of the occupancy grid (divisible by ``2**depth``).
        width: channels at full resolution, doubled at each of ``depth`` poolings.
        depth: number of 2× poolings.

    ``forward(x)`` takes ``(B, 4, g, g, g)`` inputs (see :meth:`inputs`) and returns
    ``(B, g, g, g)`` occupancy logits (apply a sigmoid for probabilities).
    """

    def __init__(self, grid: int = 32, width: int = 8, depth: int = 2) -> None:
        super().__init__()
        if grid % 2**depth or min(width, depth) < 1:
            raise ConfigError(f"PoseVox needs width, depth ≥ 1 and a grid divisible by "
                              f"2**depth (got grid {grid}, width {width}, depth {depth})")
        self.hparams = dict(grid=grid, width=width, depth=depth)
        self.register_buffer("prior", torch.zeros(grid, grid, grid))
        widths = [width * 2**k for k in range(depth + 1)]
        self.down = nn.ModuleList(
            _block(c_in, c_out)
            for c_in, c_out in zip([EVIDENCE_CHANNELS + 2, *widths[:-1]], widths, strict=True)
        )
        self.up = nn.ModuleList(
            nn.ConvTranspose3d(widths[k + 1], widths[k], 2, 2) for k in reversed(range(depth))
        )
        self.merge = nn.ModuleList(_block(2 * widths[k], widths[k])
                                   for k in reversed(range(depth)))
        self.head = nn.Conv3d(width, 1, 1)
        # CPU back-propagation through 3D convolutions is several times faster channels-last
        for module in self.modules():
            if isinstance(module, (nn.Conv3d, nn.ConvTranspose3d)):
                module.to(memory_format=torch.channels_last_3d)

    def inputs(self, evidence: torch.Tensor, n_views: torch.Tensor,
               prior: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, 4, g, g, g)`` network input from ``(B, 2, g, g, g)`` back-projected evidence
        and the number of views ``(B,)`` each was made of, with the stored prior (or
        ``prior``, ``(B, 1, g, g, g)``: the stored one turned like the evidence in training)."""
        b = evidence.shape[0]
        if prior is None:
            prior = self.prior.expand(b, 1, *self.prior.shape)
        views = (1.0 / n_views.float()).reshape(b, 1, 1, 1, 1).expand_as(prior)
        return torch.cat([evidence, prior, views], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.hparams["grid"]
        if x.dim() != 5 or x.shape[1] != EVIDENCE_CHANNELS + 2 or x.shape[2:] != (g, g, g):
            raise ConfigError(f"PoseVox input must be (B, {EVIDENCE_CHANNELS + 2}, {g}, {g}, "
                              f"{g}), got {tuple(x.shape)}")
        x = x.contiguous(memory_format=torch.channels_last_3d)
        skips = []
        for k, layer in enumerate(self.down):
            x = layer(x if k == 0 else nn.functional.max_pool3d(x, 2))
            skips.append(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips[:-1]), strict=True):
            x = merge(torch.cat([up(x), skip], dim=1))
        return self.head(x).squeeze(1)


def pose_predict(model, evidence: np.ndarray, n_views: Sequence[int] | np.ndarray,
                 batch_size: int = 8) -> np.ndarray:
    """Occupancy probabilities (S, g, g, g) from back-projected evidence (S, 2, g, g, g) made
    of ``n_views`` views each."""
    device = next(model.parameters()).device
    counts = np.full(len(evidence), n_views, dtype=np.float32) if np.isscalar(n_views) \
        else np.asarray(n_views, dtype=np.float32)
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(evidence), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(evidence[start : start + batch_size]))
            n = torch.from_numpy(np.ascontiguousarray(counts[start : start + batch_size]))
            out.append(torch.sigmoid(model(model.inputs(x.to(device), n.to(device))))
                       .cpu().numpy())
    return np.concatenate(out)


def reconstruct(model, views: AFMViews, centre: np.ndarray, voxel_size: float
                ) -> np.ndarray:
    """PoseVox occupancy probabilities (g, g, g) in (z, y, x) order of one structure from its
    views (heights in Å, orientations, substrate floors) on the grid of ``centre`` (x, y, z)
    Å and ``voxel_size`` Å."""
    grid = model.hparams["grid"]
    evidence = backproject(views, np.asarray(centre), float(voxel_size), grid)
    return pose_predict(model, evidence[None], len(views.heights))[0]
