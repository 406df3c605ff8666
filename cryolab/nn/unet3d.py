"""The 3D U-Net of Mullick et al. for map super-resolution, and its Dice loss.

As published: an encoder of 4×4×4 convolutions at stride 2 (each halves the grid), each
followed by InstanceNorm and ReLU; a bottleneck of 4×4×4 convolutions at stride 1 with
dropout 0.2; a decoder of 4×4×4 transposed convolutions at stride 2 (each doubles the grid)
whose outputs are concatenated with the encoder features of the same size (skip
connections); and an output layer.

Our reading of the ambiguous output layer ("upsamples by scale factor 3"): the last decoder
level is at half the input grid, so the output layer upsamples by 2 (trilinear) and a
3×3×3 convolution maps the features, concatenated with the input map, to one channel. A ×3
upsampling would give an output grid 1.5× the input's, which cannot be compared voxel by
voxel with the target; we take the "3" to be that kernel size.

A 4×4×4 kernel at stride 1 has no symmetric "same" padding, so the bottleneck pads one voxel
before and two after on every axis.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812 - the usual torch alias

__all__ = ["UNet3D", "dice_coefficient", "dice_loss"]


def _down(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(c_in, c_out, 4, stride=2, padding=1),
        nn.InstanceNorm3d(c_out, affine=True),
        nn.ReLU(inplace=True),
    )


def _up(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose3d(c_in, c_out, 4, stride=2, padding=1),
        nn.InstanceNorm3d(c_out, affine=True),
        nn.ReLU(inplace=True),
    )


class _SamePad4(nn.Module):
    """Pad (1, 2) on each spatial axis so that a 4×4×4 stride-1 convolution keeps the size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (1, 2, 1, 2, 1, 2))


def _bottleneck(channels: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        _SamePad4(),
        nn.Conv3d(channels, channels, 4, stride=1),
        nn.InstanceNorm3d(channels, affine=True),
        nn.ReLU(inplace=True),
        nn.Dropout3d(dropout),
    )


class UNet3D(nn.Module):
    """3D U-Net mapping a (B, 1, N, N, N) map to a (B, 1, N, N, N) map.

    Args:
        depth: number of stride-2 downsampling layers; N must be divisible by ``2**depth``
            (paper: 128³ patches).
        base: channels after the first downsampling; doubled at each level up to
            ``8 * base``.
        bottleneck: number of stride-1 4×4×4 convolutions in the bottleneck.
        dropout: dropout probability in the bottleneck (paper: 0.2).
    """

    def __init__(self, depth: int = 4, base: int = 32, bottleneck: int = 2,
                 dropout: float = 0.2) -> None:
        super().__init__()
        if depth < 1 or base < 1 or bottleneck < 0:
            raise ValueError(f"bad UNet3D sizes: depth {depth}, base {base}, "
                             f"bottleneck {bottleneck}")
        self.hparams = dict(depth=depth, base=base, bottleneck=bottleneck, dropout=dropout)
        widths = [min(base * 2**i, 8 * base) for i in range(depth)]
        self.encoder = nn.ModuleList(
            _down(c_in, c_out) for c_in, c_out in zip([1, *widths[:-1]], widths, strict=True)
        )
        self.middle = nn.Sequential(*(_bottleneck(widths[-1], dropout) for _ in range(bottleneck)))
        # decoder level i brings the grid from encoder level i+1 back to level i's size
        self.decoder = nn.ModuleList()
        c_in = widths[-1]
        for level in range(depth - 2, -1, -1):
            self.decoder.append(_up(c_in, widths[level]))
            c_in = 2 * widths[level]  # after concatenation with the skip
        self.upsample = nn.Upsample(scale_factor=2, mode="trilinear", align_corners=False)
        self.head = nn.Conv3d(c_in + 1, 1, 3, padding=1)
        self.divisor = 2**depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(n % self.divisor for n in x.shape[2:]):
            raise ValueError(
                f"UNet3D(depth={self.hparams['depth']}) needs a grid divisible by "
                f"{self.divisor}, got {tuple(x.shape[2:])}"
            )
        skips = []
        h = x
        for layer in self.encoder:
            h = layer(h)
            skips.append(h)
        h = self.middle(h)
        for layer, skip in zip(self.decoder, reversed(skips[:-1]), strict=True):
            h = torch.cat([layer(h), skip], dim=1)
        h = self.upsample(h)
        return self.head(torch.cat([h, x], dim=1))


def dice_coefficient(prediction: torch.Tensor, target: torch.Tensor,
                     eps: float = 1e-6) -> torch.Tensor:
    """The paper's Dice coefficient ``D = 2Σpg / (Σp² + Σg²)`` per sample, (B,) tensor.

    For real-valued maps ``D ≤ 1`` with equality only when ``p = g``, because
    ``Σ(p − g)² = Σp² + Σg² − 2Σpg ≥ 0``.
    """
    dims = tuple(range(1, prediction.ndim))
    num = 2.0 * (prediction * target).sum(dim=dims)
    den = (prediction**2).sum(dim=dims) + (target**2).sum(dim=dims)
    return (num + eps) / (den + eps)


def dice_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1 − D`` averaged over the batch (the paper's training loss)."""
    return 1.0 - dice_coefficient(prediction, target).mean()
