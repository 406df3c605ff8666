"""Tests of the tomogram U-Net (2D, 2.5D, 3D), its whole-volume and tiled inference, and its
training on toy data."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy import ndimage

from cryolab.errors import CheckpointError, ConfigError
from cryolab.metrics import dice, psnr
from cryolab.nn.unet import (
    UNet,
    apply_to_cubes,
    denoise_volume,
    predict_logits,
    segment_volume,
    slice_stacks,
)
from cryolab.nn.unet3d import UNet3D
from cryolab.pipelines.tomolearn import PROFILES, train_unet
from cryolab.train import load_model


@pytest.mark.parametrize("dims,c_in,size", [(2, 5, (13, 20)), (2, 1, (16, 16)),
                                            (3, 1, (9, 12, 7))])
def test_any_grid_size_in_same_size_out(dims, c_in, size):
    net = UNet(c_in, 3, dims=dims, base=4, depth=2)
    out = net(torch.zeros(2, c_in, *size))
    assert out.shape == (2, 3, *size)
    assert net.hparams == dict(in_channels=c_in, out_channels=3, dims=dims, base=4, depth=2,
                               norm="batch", residual=False)
    assert net.divisor == 4


def test_levels_and_widths():
    net = UNet(5, 2, dims=2, base=8, depth=3)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs[0].in_channels == 5 and convs[-1].out_channels == 2
    assert convs[-1].kernel_size == (1, 1)
    widths = sorted({c.out_channels for c in convs[:-1]})
    assert widths == [8, 16, 32, 64]
    ups = [m for m in net.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert len(ups) == 3 and all(u.stride == (2, 2) for u in ups)
    assert net.context == 2 and UNet(1, 1, dims=3).context == 0


def test_residual_with_zero_head_is_the_centre_slice():
    net = UNet(5, 1, dims=2, base=4, depth=1, residual=True).eval()
    torch.nn.init.zeros_(net.head.weight)
    torch.nn.init.zeros_(net.head.bias)
    x = torch.randn(3, 5, 8, 8)
    assert torch.equal(net(x), x[:, 2:3])


def test_slice_stacks_match_a_loop():
    vol = np.random.default_rng(0).normal(size=(6, 4, 5)).astype(np.float32)
    stacks = slice_stacks(vol, 5)
    assert stacks.shape == (6, 5, 4, 5)
    for z in range(6):
        for j, dz in enumerate(range(-2, 3)):
            np.testing.assert_array_equal(stacks[z, j], vol[min(max(z + dz, 0), 5)])
    np.testing.assert_array_equal(slice_stacks(vol, 1)[:, 0], vol)


def test_cubes_run_slice_by_slice_in_2p5d():
    torch.manual_seed(0)
    net = UNet(3, 2, dims=2, base=4, depth=1).eval()
    cubes = np.random.default_rng(1).normal(size=(2, 5, 8, 8)).astype(np.float32)
    out = apply_to_cubes(net, cubes, chunk=3)
    assert out.shape == (2, 2, 5, 8, 8)
    with torch.no_grad():
        direct = net(torch.from_numpy(slice_stacks(cubes[1], 3)[4:5].copy()))[0].numpy()
    np.testing.assert_allclose(out[1, :, 4], direct, atol=1e-5)


@pytest.mark.parametrize("dims,c_in", [(2, 3), (3, 1)])
def test_tiled_inference_matches_whole_volume_inside(dims, c_in):
    torch.manual_seed(0)
    net = UNet(c_in, 3, dims=dims, base=4, depth=1).eval()
    for p in net.parameters():  # make the class map vary across the volume
        p.data.normal_(0, 0.5)
    vol = np.random.default_rng(2).normal(size=(32, 32, 32)).astype(np.float32)
    whole = predict_logits(net, vol)
    assert whole.shape == (3, 32, 32, 32)
    tiled = segment_volume(net, vol, patch=32, stride=8)  # margins of 12 voxels
    inner = (slice(12, -12),) * 3  # farther from the border than the receptive field
    assert len(np.unique(whole.argmax(0)[inner])) > 1
    np.testing.assert_array_equal(tiled[inner], whole.argmax(0)[inner])
    assert tiled.dtype == np.int16
    one = UNet(c_in, 1, dims=dims, base=2, depth=1).eval()
    den = denoise_volume(one, vol, patch=32, stride=8)
    np.testing.assert_allclose(den[inner], predict_logits(one, vol)[0][inner], atol=1e-5)
    with pytest.raises(ConfigError, match="one output"):
        denoise_volume(net, vol)


def _toy(seed: int, n: int = 24):
    """Blobs: bright spheres (class 1) and dark spheres (class 2), clean and noisy."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((n, n, n), np.int64)
    z, y, x = np.indices(labels.shape)
    for _ in range(8):
        c = rng.uniform(3, n - 3, 3)
        labels[(z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 <= 9] = rng.integers(1, 3)
    clean = ndimage.gaussian_filter(np.select([labels == 1, labels == 2], [1.0, -1.0]), 1.0)
    noisy = clean + rng.normal(0, 0.4, clean.shape)
    return noisy.astype(np.float32), clean.astype(np.float32), labels


TOY = dataclasses.replace(PROFILES["smoke"], patch=16, base=8, depth=2, batch_size=8,
                          steps=15, slices=3, lr=1e-2)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_denoiser_learns_toy_volumes(tmp_path):
    train = [_toy(s) for s in range(3)]
    noisy, clean, _ = _toy(10)
    ckpt = tmp_path / "den.pt"
    model, hist = train_unet([t[0] for t in train], [t[1] for t in train], TOY, epochs=5,
                             checkpoint=ckpt, progress=False)
    assert hist["loss"][-1] < 0.6 * hist["loss"][0]
    pred = predict_logits(model, noisy)[0]
    rng = float(clean.max() - clean.min())
    assert psnr(pred, clean, rng) > psnr(noisy, clean, rng) + 3
    again = load_model(ckpt, UNet, device="cpu")
    np.testing.assert_allclose(predict_logits(again, noisy)[0], pred, atol=1e-5)
    with pytest.raises(CheckpointError, match="UNet"):
        load_model(ckpt, UNet3D)


def test_segmenter_learns_toy_classes():
    train = [_toy(s) for s in range(3)]
    noisy, _, labels = _toy(10)
    model, hist = train_unet([t[0] for t in train], [t[2] for t in train], TOY, epochs=5,
                             n_classes=3, progress=False, seed=1)
    assert hist["loss"][-1] < 0.6 * hist["loss"][0]
    pred = predict_logits(model, noisy).argmax(0)
    scores = dice(pred, labels, labels=[1, 2])
    assert min(scores.values()) > 0.6


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="dims"):
        UNet(dims=4)
    with pytest.raises(ConfigError, match="norm"):
        UNet(norm="layer")
    with pytest.raises(ConfigError, match="residual"):
        UNet(out_channels=3, residual=True)
    with pytest.raises(ConfigError, match="odd"):
        slice_stacks(np.zeros((4, 4, 4)), 4)
    with pytest.raises(ConfigError, match="input"):
        UNet(dims=3)(torch.zeros(1, 1, 8, 8))
