"""The U-Net of the tomogram chapter: denoising (regression) and segmentation (classes).

One class covers the three flavours used for tomograms:

- ``dims=3``: a 3D U-Net on cubes, input (B, C_in, D, H, W);
- ``dims=2`` with ``in_channels=1``: a 2D U-Net on single slices;
- ``dims=2`` with ``in_channels=k`` (odd): the *2.5D* U-Net of cryo-TomoSim's experiments,
  "k slices in, the centre slice out" (the paper uses 5). The k neighbouring z-slices are
  the input channels, so the network sees a little depth at the cost of a 2D network.

Architecture (Ronneberger et al. 2015, as in most tomogram tools): each level is two 3×3(×3)
convolutions, each followed by a normalisation and a ReLU; ``depth`` max-poolings halve the
grid on the way down and ``depth`` stride-2 transposed convolutions double it on the way up,
where the features are concatenated with the encoder's features of the same size (skip
connections). Channels are ``base·2^level``. A final 1×1 convolution gives ``out_channels``
values per voxel: the denoised value (regression) or one logit per class (segmentation).

Inputs of any size are accepted: the forward pass pads the grid to a multiple of
``2**depth`` and crops the output back.

:func:`slice_stacks` turns a volume into the k-slice inputs of a 2.5D network and
:func:`apply_to_cubes` runs any flavour over a batch of cubes, which is what
:func:`cryolab.tiles.sliding_window` needs to process a whole tomogram tile by tile
(:func:`denoise_volume`, :func:`segment_volume`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812 - the usual torch alias

from ..errors import ConfigError

__all__ = [
    "UNet",
    "slice_stacks",
    "apply_to_cubes",
    "predict_logits",
    "denoise_volume",
    "segment_volume",
]

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_UP = {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
_POOL = {2: nn.MaxPool2d, 3: nn.MaxPool3d}
_NORM = {
    ("batch", 2): nn.BatchNorm2d,
    ("batch", 3): nn.BatchNorm3d,
    ("instance", 2): lambda c: nn.InstanceNorm2d(c, affine=True),
    ("instance", 3): lambda c: nn.InstanceNorm3d(c, affine=True),
}


def _double_conv(dims: int, norm: str, c_in: int, c_out: int) -> nn.Sequential:
    conv, make_norm = _CONV[dims], _NORM[(norm, dims)]
    return nn.Sequential(
        conv(c_in, c_out, 3, padding=1, bias=False),
        make_norm(c_out),
        nn.ReLU(inplace=True),
        conv(c_out, c_out, 3, padding=1, bias=False),
        make_norm(c_out),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """A 2D, 2.5D or 3D U-Net.

    Args:
        in_channels: input channels; for a 2.5D network (``dims=2``) the number of z-slices
            seen at once (odd, e.g. 5).
        out_channels: 1 for denoising; the number of classes for segmentation (logits).
        dims: 2 (slices) or 3 (cubes).
        base: channels of the first level (doubled at each of the ``depth`` levels below).
        depth: number of poolings (the grid is padded to a multiple of ``2**depth``).
        norm: ``"batch"`` or ``"instance"`` normalisation after each convolution.
        residual: for regression, predict a correction added to the input's centre slice
            (or the input itself in 3D); needs ``out_channels == 1``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        dims: int = 2,
        base: int = 16,
        depth: int = 3,
        norm: str = "batch",
        residual: bool = False,
    ) -> None:
        super().__init__()
        if dims not in (2, 3):
            raise ConfigError(f"UNet dims must be 2 or 3, got {dims}")
        if (norm, dims) not in _NORM:
            raise ConfigError(f"UNet norm must be 'batch' or 'instance', got {norm!r}")
        if in_channels < 1 or out_channels < 1 or base < 1 or depth < 1:
            raise ConfigError(
                f"bad UNet sizes: in {in_channels}, out {out_channels}, base {base}, "
                f"depth {depth}"
            )
        if residual and out_channels != 1:
            raise ConfigError("a residual UNet predicts one channel (out_channels=1)")
        self.hparams = dict(
            in_channels=in_channels, out_channels=out_channels, dims=dims, base=base,
            depth=depth, norm=norm, residual=residual,
        )
        self.dims, self.depth, self.residual = dims, depth, residual
        widths = [base * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        c_in = in_channels
        for w in widths[:-1]:
            self.down.append(_double_conv(dims, norm, c_in, w))
            c_in = w
        self.pool = _POOL[dims](2)
        self.bottom = _double_conv(dims, norm, widths[-2], widths[-1])
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for w_low, w in zip(widths[:0:-1], widths[-2::-1], strict=True):
            self.up.append(_UP[dims](w_low, w, 2, stride=2))
            self.merge.append(_double_conv(dims, norm, 2 * w, w))
        self.head = _CONV[dims](widths[0], out_channels, 1)

    @property
    def divisor(self) -> int:
        """Grid sizes that need no padding are multiples of this (``2**depth``)."""
        return 2**self.depth

    @property
    def context(self) -> int:
        """Slices on each side of the output slice a 2.5D network sees (0 in 3D)."""
        return (self.hparams["in_channels"] - 1) // 2 if self.dims == 2 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != self.dims + 2:
            raise ConfigError(
                f"a {self.dims}D UNet needs input (B, C, {'D, ' if self.dims == 3 else ''}H, W), "
                f"got shape {tuple(x.shape)}"
            )
        size = x.shape[2:]
        k = self.divisor
        pad = [(-n) % k for n in size]
        h = F.pad(x, [p for n in reversed(pad) for p in (0, n)]) if any(pad) else x
        skips = []
        for block in self.down:
            h = block(h)
            skips.append(h)
            h = self.pool(h)
        h = self.bottom(h)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips), strict=True):
            h = merge(torch.cat([up(h), skip], dim=1))
        out = self.head(h)
        out = out[(..., *(slice(0, n) for n in size))]
        if self.residual:
            centre = x[:, x.shape[1] // 2 : x.shape[1] // 2 + 1]
            out = out + centre
        return out


def slice_stacks(volume: np.ndarray, slices: int) -> np.ndarray:
    """The 2.5D inputs of every z-slice: ``(..., Z, Y, X) -> (..., Z, slices, Y, X)``.

    Slice ``z`` of the result holds z-slices ``z - slices//2 ... z + slices//2`` of the
    volume; beyond the top and bottom the edge slice is repeated.
    """
    if slices < 1 or slices % 2 == 0:
        raise ConfigError(f"a slice stack needs an odd number of slices, got {slices}")
    c = slices // 2
    nz = volume.shape[-3]
    index = np.clip(np.arange(nz)[:, None] + np.arange(-c, c + 1)[None, :], 0, nz - 1)
    return volume[..., index, :, :]


def apply_to_cubes(model: UNet, cubes: np.ndarray, device: torch.device | None = None,
                   chunk: int = 64) -> np.ndarray:
    """Run a network on a batch of cubes ``(B, D, H, W)``; returns ``(B, C_out, D, H, W)``.

    A 3D network sees each cube whole; a 2.5D network sees every z-slice of each cube with its
    neighbours (edges repeated) in chunks of ``chunk`` slices.
    """
    device = device or next(model.parameters()).device
    cubes = np.asarray(cubes, dtype=np.float32)
    with torch.no_grad():
        if model.dims == 3:
            x = torch.from_numpy(cubes[:, None]).to(device)
            return model(x).float().cpu().numpy()
        b, d, h, w = cubes.shape
        stacks = slice_stacks(cubes, model.hparams["in_channels"]).reshape(b * d, -1, h, w)
        outs = [
            model(torch.from_numpy(np.ascontiguousarray(stacks[i : i + chunk])).to(device))
            .float().cpu().numpy()
            for i in range(0, len(stacks), chunk)
        ]
        out = np.concatenate(outs)
        return out.reshape(b, d, -1, h, w).transpose(0, 2, 1, 3, 4)


def predict_logits(model: UNet, volume: np.ndarray, device: torch.device | None = None
                   ) -> np.ndarray:
    """The network's output on a whole (small) volume at once: ``(C_out, Z, Y, X)``."""
    model.eval()
    return apply_to_cubes(model, np.asarray(volume, dtype=np.float32)[None], device)[0]


def _tiling(model: UNet, patch: int, stride: int | None) -> tuple[int, int]:
    """Tile edge and step on the network's pooling grid.

    The margin each tile discards, ``(patch - stride) / 2``, is rounded up to a multiple of
    ``model.divisor`` (and to at least the 2.5D context), so tiles pool on the same grid as a
    whole-volume pass and agree with it wherever the margin covers the receptive field.
    """
    d = model.divisor
    patch = int(np.ceil(patch / d) * d)
    margin = max((patch - (stride or patch // 2)) // 2, model.context)
    margin = int(np.ceil(margin / d) * d)
    if 2 * margin >= patch:
        raise ConfigError(f"tile edge {patch} leaves no core after a margin of {margin} "
                          "voxels on each side; use a larger patch or stride")
    return patch, patch - 2 * margin


def denoise_volume(model: UNet, volume: np.ndarray, patch: int = 64, stride: int | None = None,
                   batch_size: int = 4, device: torch.device | None = None,
                   progress: bool = False) -> np.ndarray:
    """Apply a regression network to a whole tomogram tile by tile.

    Tiles are blended with the ``"core"`` weight: each voxel comes from the one tile whose
    centre it is nearest, where the network saw enough context on every side, so the result
    matches a whole-volume pass wherever the tile margin exceeds the receptive field. The
    volume should be normalised the way the training data were (zero mean, unit std).
    """
    from ..tiles import sliding_window

    if model.hparams["out_channels"] != 1:
        raise ConfigError("denoise_volume needs a network with one output channel")
    model.eval()
    patch, stride = _tiling(model, patch, stride)
    return sliding_window(
        volume, lambda cubes: apply_to_cubes(model, cubes, device)[:, 0], patch, stride,
        weight="core", batch_size=batch_size, pad_mode="reflect", progress=progress,
    )


def segment_volume(model: UNet, volume: np.ndarray, patch: int = 64, stride: int | None = None,
                   batch_size: int = 4, device: torch.device | None = None,
                   progress: bool = False) -> np.ndarray:
    """Label every voxel of a tomogram with its most likely class, tile by tile.

    Tiles are blended with the ``"core"`` weight, so every voxel's label comes from exactly one
    tile (the one whose centre it is nearest) and the labels stay integers. Returns int16.
    """
    from ..tiles import sliding_window

    model.eval()
    patch, stride = _tiling(model, patch, stride)
    labels = sliding_window(
        volume, lambda cubes: apply_to_cubes(model, cubes, device).argmax(axis=1), patch,
        stride, weight="core", batch_size=batch_size, pad_mode="reflect", progress=progress,
    )
    return np.rint(labels).astype(np.int16)
