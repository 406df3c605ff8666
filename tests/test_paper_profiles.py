"""Every ``paper`` profile builds its full-width networks and takes one training step on tiny
inputs on the CPU, through the chapter's own training function: what a GPU run would meet
first (shapes, widths, losses, optimiser settings) is checked here, not on the GPU."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from cryolab.io import Volume


def _volume(rng: np.random.Generator, n: int) -> Volume:
    return Volume(rng.random((n, n, n), dtype=np.float32), 1.0, 0.0)


def _one_step(history) -> None:  # noqa: ANN001 - a cryolab.train.History
    assert len(history) == 1 and np.isfinite(history["loss"][0])


@pytest.fixture(autouse=True)
def _threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("condition", [None, (3.0, 8.0)], ids=["gan", "conditioned"])
def test_struc2map_paper(condition):
    from cryolab.curate import CuratedPair
    from cryolab.pipelines import struc2map as s2m

    cfg = replace(s2m.PROFILES["paper"], patches_per_epoch=1, pool_size=1, batch_size=1,
                  patch=16)
    assert cfg.base_channels == 32
    rng = np.random.default_rng(0)
    pair = CuratedPair(_volume(rng, 20), _volume(rng, 20), np.ones((20, 20, 20), bool), "toy")
    pool = s2m.PatchPool([pair], cfg.patch, cfg.pool_size, seed=0,
                         resolutions=None if condition is None else [3.0])
    trainer, history = s2m.train_gan(cfg, pool, condition=condition, epochs=1, progress=False,
                                     device="cpu")
    assert trainer.models["generator"].hparams["base_channels"] == 32
    _one_step(history)


def _superres_pairs(n: int):
    """Two pairs of random maps around a one-atom structure at the box centre."""
    import gemmi

    from cryolab import superres as sr

    structure = gemmi.Structure()
    structure.add_model(gemmi.Model("1"))
    structure[0].add_chain(gemmi.Chain("A"))
    residue = gemmi.Residue()
    residue.name = "GLY"
    atom = gemmi.Atom()
    atom.name, atom.element, atom.pos = "CA", gemmi.Element("C"), gemmi.Position(*[n / 2] * 3)
    residue.add_atom(atom)
    structure[0]["A"].add_residue(residue)
    rng = np.random.default_rng(1)
    return [sr.Pair(sr.Entry("TOY", "toy", structure), _volume(rng, n), _volume(rng, n))
            for _ in range(2)]


def test_superres_paper():
    from cryolab import superres as sr

    cfg = replace(sr.PROFILES["paper"], patch=32, patches_per_epoch=1, batch=1)
    assert (cfg.depth, cfg.base) == (4, 32)
    model, history = sr.train_unet3d(_superres_pairs(32), cfg, epochs=1, progress=False,
                                     device="cpu")
    assert model.hparams["base"] == 32
    _one_step(history)


@pytest.mark.parametrize("skips", [False, True], ids=["vae", "vae_skips"])
def test_sharpening_paper(skips):
    from cryolab.pipelines import sharpening as sp

    cfg = replace(sp.PROFILES["paper"], patch=16, patches_per_epoch=1, batch=1, epochs=1)
    assert (cfg.depth, cfg.base) == (3, 32)
    pairs = _superres_pairs(16)
    model, history = sp.train_vae(pairs[:1], pairs[1:], cfg, skips, device="cpu",
                                  progress=False)
    assert model.hparams["base"] == 32
    _one_step(history)
    assert np.isfinite(history["val_rscc"][0])


@pytest.mark.parametrize("classes", [1, 5], ids=["denoiser", "segmenter"])
def test_tomolearn_paper(classes):
    from cryolab.pipelines import tomolearn as tl

    cfg = replace(tl.PROFILES["paper"], patch=16, steps=1, batch_size=2)
    assert (cfg.base, cfg.depth) == (32, 4)
    rng = np.random.default_rng(2)
    volume = rng.normal(size=(cfg.slices + 2, 24, 24)).astype(np.float32)
    target = (rng.integers(0, classes, volume.shape) if classes > 1 else volume).astype(
        np.int64 if classes > 1 else np.float32)
    classes = len(tl.CLASSES) if classes > 1 else 1
    model, history = tl.train_unet([volume], [target], cfg, 1, n_classes=classes,
                                   progress=False)
    _one_step(history)


def test_afm_paper():
    from cryolab.pipelines import afm_views as av

    cfg = replace(av.PROFILES["paper"], n_views=2, batch_size=2, train_views=(1, 2), epochs=1)
    n, g = cfg.image_size, cfg.grid
    assert (n, cfg.width, cfg.refiner_hidden) == (128, 32, 2048)
    rng = np.random.default_rng(3)
    heights = rng.random((2, cfg.n_views, n, n)).astype(np.float16)
    ds = av.AFMDataset(
        names=np.array(["a", "b"]), heights=heights, images=heights,
        quaternions=np.tile([0.0, 0.0, 0.0, 1.0], (2, cfg.n_views, 1)),
        floors=np.zeros((2, cfg.n_views)), pixel_size=np.ones(2), centre=np.zeros((2, 3)),
        voxel=np.ones(2), targets=rng.random((2, g, g, g)) > 0.5,
        validation=np.zeros(2, bool),
    )
    model, history = av.train_pix2vox(ds, cfg, checkpoint=None, progress=False)
    _one_step(history)
