"""struc2mapGAN's networks: a 3D U-Net++ generator and a small convolutional discriminator.

**Generator** (:class:`UNetPlusPlus3D`). A U-Net++ (Zhou et al.) is a U-Net whose skip
connections are replaced by nested, densely connected decoder columns. Node ``X[i][j]`` sits
at depth ``i`` (resolution halved ``i`` times, ``base·2^i`` channels) and column ``j``:

- ``X[i][0] = block(maxpool(X[i-1][0]))`` — the encoder (``X[0][0] = block(input)``);
- ``X[i][j] = block(concat(X[i][0], …, X[i][j-1], up(X[i+1][j-1])))`` — each node sees every
  earlier node of its row (dense skips) and the upsampled node below-left of it.

With four levels (depths 0–3) the output is a 1×1×1 linear convolution of ``X[0][3]``. Every
node is a residual block: two 3×3×3 convolutions, each followed by InstanceNorm and PReLU,
plus a shortcut (identity, or a 3×3×3 convolution + InstanceNorm when the channel count
changes). Upsampling is trilinear ×2.

**Discriminator** (:class:`Discriminator3D`). Four 3×3×3 convolutions of stride 2
(1→32→64→128→256 channels; InstanceNorm + PReLU after the first three), global average
pooling, then fully connected 256→100→25→1 giving a logit (real vs generated map).

Weights are drawn from N(0, 0.01²) and biases set to 0 (the paper's initialisation).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["ResidualBlock", "UNetPlusPlus3D", "Discriminator3D", "init_normal"]


def init_normal(module: nn.Module, std: float = 0.01) -> None:
    """Initialise every convolution and linear layer of ``module`` with N(0, std²), bias 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv3d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class ResidualBlock(nn.Module):
    """Two (3×3×3 conv → InstanceNorm → PReLU) plus a shortcut."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv3d(in_channels, out_channels, 3, padding=1),
            nn.InstanceNorm3d(out_channels, affine=True),
            nn.PReLU(out_channels),
            nn.Conv3d(out_channels, out_channels, 3, padding=1),
            nn.InstanceNorm3d(out_channels, affine=True),
            nn.PReLU(out_channels),
        )
        if in_channels == out_channels:
            self.shortcut: nn.Module = nn.Identity()
        else:
            self.shortcut = nn.Sequential(
                nn.Conv3d(in_channels, out_channels, 3, padding=1),
                nn.InstanceNorm3d(out_channels, affine=True),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


class UNetPlusPlus3D(nn.Module):
    """Nested U-Net++ in 3D (input and output (B, 1, D, H, W); D, H, W divisible by 2^(levels-1)).

    Args:
        base_channels: channels at the top level (paper 32, so 32/64/128/256).
        levels: number of depths (paper 4).
        in_channels: input channels (1: a molmap; 2 with a resolution channel).
        out_channels: output channels.
    """

    def __init__(
        self, base_channels: int = 32, levels: int = 4, in_channels: int = 1, out_channels: int = 1
    ) -> None:
        super().__init__()
        self.hparams = dict(
            base_channels=base_channels, levels=levels, in_channels=in_channels,
            out_channels=out_channels,
        )
        ch = [base_channels * 2**i for i in range(levels)]
        self.levels = levels
        self.nodes = nn.ModuleDict()
        for i in range(levels):
            self.nodes[f"{i}_0"] = ResidualBlock(in_channels if i == 0 else ch[i - 1], ch[i])
        for j in range(1, levels):
            for i in range(levels - j):
                self.nodes[f"{i}_{j}"] = ResidualBlock(ch[i] * j + ch[i + 1], ch[i])
        self.head = nn.Conv3d(ch[0], out_channels, 1)
        init_normal(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid: dict[tuple[int, int], torch.Tensor] = {}
        for i in range(self.levels):
            below = x if i == 0 else F.max_pool3d(grid[(i - 1, 0)], 2)
            grid[(i, 0)] = self.nodes[f"{i}_0"](below)
        for j in range(1, self.levels):
            for i in range(self.levels - j):
                up = F.interpolate(
                    grid[(i + 1, j - 1)], scale_factor=2, mode="trilinear", align_corners=False
                )
                row = [grid[(i, k)] for k in range(j)]
                grid[(i, j)] = self.nodes[f"{i}_{j}"](torch.cat([*row, up], dim=1))
        return self.head(grid[(0, self.levels - 1)])


class Discriminator3D(nn.Module):
    """Four stride-2 3×3×3 convolutions, global average pooling, FC 256→100→25→1 (logit).

    Args:
        base_channels: channels of the first convolution (paper 32: 32/64/128/256).
        in_channels: input channels.
    """

    def __init__(self, base_channels: int = 32, in_channels: int = 1) -> None:
        super().__init__()
        self.hparams = dict(base_channels=base_channels, in_channels=in_channels)
        ch = [base_channels * 2**i for i in range(4)]
        layers: list[nn.Module] = []
        previous = in_channels
        for k, c in enumerate(ch):
            layers.append(nn.Conv3d(previous, c, 3, stride=2, padding=1))
            if k < 3:
                layers += [nn.InstanceNorm3d(c, affine=True), nn.PReLU(c)]
            previous = c
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(ch[-1], 100), nn.PReLU(100), nn.Linear(100, 25), nn.PReLU(25),
            nn.Linear(25, 1),
        )
        init_normal(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.features(x).mean(dim=(2, 3, 4))
        return self.classifier(pooled)
