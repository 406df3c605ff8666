"""cryolab.tiles: exact reconstruction by sliding windows, aligned patches and augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cryolab.errors import ConfigError
from cryolab.tiles import augment, predict_volume, random_patches, sliding_window


@pytest.mark.parametrize("shape", [(50, 37, 23), (8, 9, 10), (20, 20, 20)])
@pytest.mark.parametrize("weight", ["core", "gaussian", "uniform"])
def test_identity_reproduces_input_including_edges(shape, weight):
    vol = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    out = sliding_window(vol, lambda cubes: cubes, patch=16, stride=10, weight=weight)
    assert out.shape == vol.shape
    np.testing.assert_allclose(out, vol, rtol=1e-5, atol=1e-6)


def test_core_weights_take_each_voxel_from_one_tile():
    """With cores, a function that returns each tile's index shows one tile per voxel."""
    vol = np.zeros((30, 30, 30), np.float32)
    counter = iter(range(10_000))

    def label(cubes):
        return np.stack([np.full(c.shape, next(counter), np.float32) for c in cubes])

    out = sliding_window(vol, label, patch=32, stride=20, weight="core", batch_size=1)
    assert np.allclose(out, np.round(out))  # no blending of different tiles
    assert len(np.unique(out)) == 8  # 2 x 2 x 2 cores of 20 cover 30^3


def test_tile_processing_is_local():
    """A pointwise function commutes with tiling; a shift-sensitive one would not."""
    vol = np.random.default_rng(1).normal(size=(25, 25, 25)).astype(np.float32)
    out = sliding_window(vol, lambda c: c**2 + 1, patch=12, stride=6, weight="gaussian")
    np.testing.assert_allclose(out, vol**2 + 1, rtol=1e-5)


def test_bad_stride_or_weight():
    vol = np.zeros((8, 8, 8))
    with pytest.raises(ConfigError):
        sliding_window(vol, lambda c: c, patch=8, stride=9)
    with pytest.raises(ConfigError):
        sliding_window(vol, lambda c: c, patch=8, stride=4, weight="triangle")


def test_random_patches_are_aligned_across_volumes():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(20, 24, 28)).astype(np.float32)
    inputs, targets = random_patches([a, 2 * a], size=8, count=10, rng=rng)
    assert inputs.shape == (10, 8, 8, 8)
    np.testing.assert_allclose(targets, 2 * inputs)


def test_random_patches_pad_small_volumes_and_skip_empty_ones():
    rng = np.random.default_rng(3)
    a = np.zeros((20, 20, 20), np.float32)
    a[:6, :6, :6] = 1.0
    (p,) = random_patches([a], size=6, count=5, rng=rng, min_mean=0.2, max_tries=500)
    assert (p.mean(axis=(1, 2, 3)) >= 0.2).all()
    (small,) = random_patches([np.ones((3, 4, 5))], size=6, count=2, rng=rng)
    assert small.shape == (2, 6, 6, 6) and small.sum() == 2 * 60


def test_augment_applies_one_transform_to_all_cubes():
    rng = np.random.default_rng(4)
    cube = rng.normal(size=(6, 6, 6))
    outs = [augment(np.random.default_rng(s), cube, cube + 1) for s in range(20)]
    for a, b in outs:
        np.testing.assert_allclose(b, a + 1)
    distinct = {a.tobytes() for a, _ in outs}
    assert len(distinct) > 5  # flips and rotations vary with the generator


def test_predict_volume_runs_a_network_over_a_map():
    conv = torch.nn.Conv3d(1, 1, 1, bias=False)
    with torch.no_grad():
        conv.weight.fill_(2.0)
    vol = np.random.default_rng(5).normal(size=(21, 22, 23)).astype(np.float32)
    out = predict_volume(conv, vol, patch=16, stride=10, weight="gaussian", device="cpu")
    np.testing.assert_allclose(out, 2 * vol, rtol=1e-5, atol=1e-6)


def test_whole_map_generation_equals_tiles_for_a_pointwise_generator():
    """A generator whose receptive field is one voxel gives the same map tiled or whole: the
    whole-map pass pads to the down-sampling factor and crops back exactly."""
    import gemmi
    import torch

    from cryolab.apply import generate_map
    from cryolab.io import Atoms

    class Pointwise(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hparams = {"in_channels": 1, "levels": 4}
            self.conv = torch.nn.Conv3d(1, 1, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.conv(x)) + 0.5 * x

    torch.manual_seed(0)
    model = Pointwise()
    rng = np.random.default_rng(1)
    els = [gemmi.Element(e) for e in rng.choice(["C", "N", "O"], 60)]
    atoms = Atoms(rng.uniform(0, 25, (60, 3)), np.array([e.atomic_number for e in els]),
                  np.array([e.weight for e in els]), np.array([e.name for e in els]))
    tiled = generate_map(model, atoms)
    whole = generate_map(model, atoms, whole=True)
    assert whole.shape == tiled.shape and whole.shape[0] % 8 != 0  # cropping was exercised
    np.testing.assert_allclose(whole.data, tiled.data, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(whole.origin, tiled.origin)
