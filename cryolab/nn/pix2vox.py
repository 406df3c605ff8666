"""Pix2Vox++: a 3D occupancy grid from any number of 2D views (Xie et al. 2020).

The network has four parts, as published:

1. an **encoder**, a 2D CNN applied to every view separately. The original is ResNet-50
   pre-trained on ImageNet; no such weights are available offline, and AFM height images look
   nothing like photographs, so here it is a small ResNet-style network (``width`` channels
   in its first stage, doubling at each of four stride-2 stages) trained from scratch;
2. a **decoder** of 3D transposed convolutions that turns each view's feature map, reshaped
   into a 2³ volume, into a coarse 32³ occupancy volume (and the features it came from);
3. the **multi-scale context-aware fusion** ("merger"): a stack of 3D convolutions scores
   every voxel of every view's volume from its features at several depths; the scores are
   softmax-normalised *across views* and weight the sum of the coarse volumes, so each voxel
   is taken from the views that see it best, whatever their number or order;
4. the **refiner**, a 3D encoder–decoder with skip connections (and a fully connected
   bottleneck) that corrects the fused volume; its output is averaged with its input.

Volumes are occupancy probabilities in (z, y, x) order. Training minimises the binary
cross-entropy of both the fused coarse volume and the refined one (:func:`pix2vox_loss`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

__all__ = ["Pix2VoxPP", "pix2vox_loss"]

GRID = 32  # the decoder's four ×2 up-samplings take 2³ to 32³


class _BasicBlock(nn.Module):
    """ResNet basic block: two 3×3 convolutions and a (projected) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = (
            nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
            if stride != 1 or c_in != c_out
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


def _conv3d(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(c_in, c_out, 3, 1, 1, bias=False),
        nn.BatchNorm3d(c_out),
        nn.LeakyReLU(0.2),
    )


def _up3d(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose3d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm3d(c_out), nn.ReLU()
    )


class Pix2VoxPP(nn.Module):
    """Pix2Vox++ for single-channel images and 32³ occupancy grids.

    Args:
        width: channels of the encoder's stem (stages have ``width × 1, 2, 4, 8``).
        decoder_width: channels of the decoder's last stage (earlier ones ×2, ×4, ×8).
        merger_width: channels of the fusion's first layer (then halved three times).
        refiner_width: channels of the refiner's first layer (then ×2, ×4).
        refiner_hidden: size of the refiner's fully connected bottleneck.
        dropout: dropout rate on the encoder's features (0 = none).

    ``forward(images)`` takes ``(B, V, H, W)`` or ``(B, V, 1, H, W)`` images, any ``V ≥ 1``
    and any ``H, W`` divisible by 16, and returns ``{"coarse": (B, 32, 32, 32), "refined":
    (B, 32, 32, 32)}`` occupancy probabilities.
    """

    def __init__(
        self,
        width: int = 16,
        decoder_width: int = 8,
        merger_width: int = 16,
        refiner_width: int = 8,
        refiner_hidden: int = 512,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.hparams = dict(
            width=width, decoder_width=decoder_width, merger_width=merger_width,
            refiner_width=refiner_width, refiner_hidden=refiner_hidden, dropout=dropout,
        )
        if min(width, decoder_width, refiner_width) < 1 or merger_width < 8:
            raise ConfigError("Pix2VoxPP widths must be ≥ 1 (merger_width ≥ 8)")
        w, d, m, r = width, decoder_width, merger_width, refiner_width
        # -- encoder: 2D, one view at a time; H×W -> 8w × 4 × 4 -> (16w) × 2³
        self.encoder = nn.Sequential(
            nn.Conv2d(1, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
            _BasicBlock(w, w, 2), _BasicBlock(w, 2 * w, 2),
            _BasicBlock(2 * w, 4 * w, 2), _BasicBlock(4 * w, 8 * w, 2),
            nn.AdaptiveAvgPool2d(4), nn.Dropout(dropout),
        )
        # -- decoder: 3D transposed convolutions 2³ -> 32³
        self.decoder = nn.Sequential(
            _up3d(16 * w, 8 * d), _up3d(8 * d, 4 * d), _up3d(4 * d, 2 * d), _up3d(2 * d, d)
        )
        self.to_volume = nn.Conv3d(d, 1, 1)
        # -- multi-scale context-aware fusion: scores from features at four depths
        widths = [m, m // 2, m // 4, m // 8]
        self.merger = nn.ModuleList(
            [_conv3d(c_in, c_out) for c_in, c_out in zip([d + 1, *widths[:-1]], widths,
                                                          strict=True)]
        )
        self.score = nn.Conv3d(sum(widths), 1, 3, 1, 1)
        # -- refiner: 3D encoder-decoder with skips and a fully connected bottleneck
        self.down = nn.ModuleList([_conv3d(1, r), _conv3d(r, 2 * r), _conv3d(2 * r, 4 * r)])
        flat = 4 * r * 4**3
        self.bottleneck = nn.Sequential(
            nn.Linear(flat, refiner_hidden), nn.ReLU(), nn.Linear(refiner_hidden, flat), nn.ReLU()
        )
        self.up = nn.ModuleList([_up3d(4 * r, 2 * r), _up3d(2 * r, r)])
        self.to_refined = nn.ConvTranspose3d(r, 1, 4, 2, 1)
        # PyTorch's CPU back-propagation through 3D convolutions is an order of magnitude
        # faster in the channels-last layout (20x measured for 3x3x3 kernels at 32³)
        for module in self.modules():
            if isinstance(module, (nn.Conv3d, nn.ConvTranspose3d)):
                module.to(memory_format=torch.channels_last_3d)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.fuse(*self.view_volumes(images))

    def view_volumes(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What each view gives alone: its coarse occupancy volume and its fusion scores,
        each (B, V, 32, 32, 32), from ``(B, V, H, W)`` or ``(B, V, 1, H, W)`` images.

        Views are encoded and decoded independently, so the first ``k`` views' entries are
        those of ``images[:, :k]``: :meth:`fuse` of a prefix gives the network's output for
        fewer views without decoding them again.
        """
        if images.dim() == 4:
            images = images.unsqueeze(2)
        if images.dim() != 5 or images.shape[2] != 1:
            raise ConfigError(f"images must be (B, V, H, W) or (B, V, 1, H, W), got "
                              f"{tuple(images.shape)}")
        b, v = images.shape[:2]
        features = self.encoder(images.flatten(0, 1))  # (B·V, 8w, 4, 4)
        latent = features.reshape(b * v, -1, 2, 2, 2)  # (B·V, 16w, 2, 2, 2)
        latent = latent.contiguous(memory_format=torch.channels_last_3d)
        decoded = self.decoder(latent)  # (B·V, d, 32³)
        volumes = torch.sigmoid(self.to_volume(decoded))  # (B·V, 1, 32³)
        # fusion: per-view, per-voxel scores from the features at several depths
        x = torch.cat([decoded, volumes], dim=1)
        scales = []
        for layer in self.merger:
            x = layer(x)
            scales.append(x)
        scores = self.score(torch.cat(scales, dim=1))
        return (volumes.reshape(b, v, GRID, GRID, GRID),
                scores.reshape(b, v, GRID, GRID, GRID))

    def fuse(self, volumes: torch.Tensor, scores: torch.Tensor) -> dict[str, torch.Tensor]:
        """Context-aware fusion and refinement of per-view volumes and scores (B, V, 32³):
        a softmax across views weights the sum of the volumes, and the refiner corrects it.
        Returns ``{"coarse": (B, 32³), "refined": (B, 32³)}``."""
        weights = torch.softmax(scores, dim=1)
        coarse = (weights * volumes).sum(dim=1)
        return {"coarse": coarse, "refined": self.refine(coarse)}

    def refine(self, coarse: torch.Tensor) -> torch.Tensor:
        """The refiner: (B, 32³) probabilities -> (B, 32³) refined probabilities."""
        x = coarse.unsqueeze(1).contiguous(memory_format=torch.channels_last_3d)
        skips = []
        for layer in self.down:
            x = F.max_pool3d(layer(x), 2)
            skips.append(x)  # 16³, 8³, 4³
        x = self.bottleneck(x.flatten(1)).reshape(skips[-1].shape) + skips[-1]
        for layer, skip in zip(self.up, skips[-2::-1], strict=True):
            x = layer(x) + skip
        refined = torch.sigmoid(self.to_refined(x)).squeeze(1)
        return (refined + coarse) * 0.5


def pix2vox_loss(out: dict[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the coarse and the refined volumes against a 0/1 target."""
    target = target.float()
    return sum(
        F.binary_cross_entropy(out[k].clamp(1e-6, 1 - 1e-6), target) for k in ("coarse", "refined")
    )
