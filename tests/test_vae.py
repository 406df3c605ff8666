"""Tests of the 3D VAE: shapes, the KL term, reparameterisation, sampling, training, loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from torch.distributions import Normal
from torch.distributions import kl_divergence as torch_kl

from cryolab.nn.vae import VAE3D, VAEOutput, kl_divergence, sample_volume, vae_loss, vae_step
from cryolab.train import Trainer, load_model


def test_shapes_and_hparams():
    for depth, n, skips in [(1, 8, False), (2, 16, True), (3, 24, False)]:
        net = VAE3D(depth=depth, base=4, latent_channels=3, skips=skips)
        out = net.run(torch.zeros(2, 1, n, n, n))
        assert out.reconstruction.shape == (2, 1, n, n, n)
        assert out.mu.shape == out.logvar.shape == (2, 3, n // 2**depth, n // 2**depth,
                                                     n // 2**depth)
        assert net.hparams == {"depth": depth, "base": 4, "latent_channels": 3, "skips": skips}
    with pytest.raises(ValueError, match="divisible"):
        VAE3D(depth=2, base=4)(torch.zeros(1, 1, 10, 12, 12))
    with pytest.raises(ValueError, match=r"\(B, 1, N, N, N\)"):
        VAE3D(depth=1, base=4)(torch.zeros(1, 2, 8, 8, 8))


def test_kl_matches_torch_distributions():
    mu, logvar = torch.randn(3, 2, 4, 4, 4), torch.randn(3, 2, 4, 4, 4)
    expected = torch_kl(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).flatten(1).sum(1)
    torch.testing.assert_close(kl_divergence(mu, logvar), expected, rtol=1e-5, atol=1e-5)
    assert torch.all(kl_divergence(torch.zeros(2, 1, 2), torch.zeros(2, 1, 2)) == 0)


def test_vae_loss_terms():
    target = torch.rand(2, 1, 4, 4, 4)
    mu, logvar = torch.ones(2, 3, 1, 1, 1), torch.zeros(2, 3, 1, 1, 1)
    out = VAEOutput(target + 0.5, mu, logvar)
    loss, rec, kl = vae_loss(out, target, beta=2.0, reconstruction="l1")
    assert rec.item() == pytest.approx(0.5)
    assert kl.item() == pytest.approx(3 * 0.5 / 64)  # ½μ² per latent element, per voxel
    assert loss.item() == pytest.approx(0.5 + 2.0 * 3 * 0.5 / 64)
    _, rec2, _ = vae_loss(out, target, reconstruction="mse")
    assert rec2.item() == pytest.approx(0.25)
    with pytest.raises(ValueError, match="reconstruction"):
        vae_loss(out, target, reconstruction="huber")
    with pytest.raises(ValueError, match="reconstruction"):
        vae_step(reconstruction="ssim")


def test_reparameterisation_has_the_posterior_moments():
    mu, logvar = torch.full((20000,), 1.5), torch.full((20000,), np.log(0.25))
    z = VAE3D.reparameterise(mu, logvar, torch.Generator().manual_seed(0))
    assert z.mean().item() == pytest.approx(1.5, abs=0.02)
    assert z.std().item() == pytest.approx(0.5, abs=0.02)


def test_eval_is_deterministic_and_samples_spread():
    torch.manual_seed(0)
    net = VAE3D(depth=1, base=4, latent_channels=2).eval()
    x = torch.randn(1, 1, 8, 8, 8)
    torch.testing.assert_close(net(x), net(x))
    mean, std = net.sample(x, n=6, generator=torch.Generator().manual_seed(1))
    mean2, std2 = net.sample(x, n=6, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(mean, mean2)
    assert mean.shape == std.shape == x.shape and std.min() >= 0 and std.max() > 0
    # a posterior with (almost) no variance gives (almost) no spread
    with torch.no_grad():
        net.to_logvar.bias.fill_(-20.0)
        net.to_logvar.weight.zero_()
    _, std = net.sample(x, n=4)
    assert std.max() < 1e-3
    with pytest.raises(ValueError, match="n ≥ 2"):
        net.sample(x, n=1)


def _blur_pairs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sharp 8³ cubes of a few blobs and their Gaussian-blurred inputs, both z-scored."""
    rng = np.random.default_rng(seed)
    sharp = np.zeros((n, 8, 8, 8), np.float32)
    for cube in sharp:
        idx = rng.integers(1, 7, size=(4, 3))
        cube[tuple(idx.T)] = 1.0
        cube[:] = ndimage.gaussian_filter(cube, 0.8)
        cube /= cube.max()
    blurred = np.stack([ndimage.gaussian_filter(c, 1.5) for c in sharp]).astype(np.float32)
    x, y = torch.from_numpy(blurred[:, None]), torch.from_numpy(sharp[:, None])
    return (x - x.mean()) / x.std(), (y - y.mean()) / y.std()


def test_training_lowers_the_loss_and_logs_each_term(tmp_path):
    x, y = _blur_pairs(8, 0)
    torch.manual_seed(0)
    net = VAE3D(depth=1, base=8, latent_channels=4)
    trainer = Trainer(net, torch.optim.Adam(net.parameters(), lr=3e-3), vae_step(beta=1e-2),
                      checkpoint=tmp_path / "vae.pt", config={"t": 1}, seed=0)
    hist = trainer.fit(lambda epoch, rng: [(x, y)], epochs=30, progress=False)
    assert hist["reconstruction"][-1] < 0.6 * hist["reconstruction"][0]  # z-scored: starts at ~1
    assert all(np.isfinite(hist["kl"])) and hist["kl"][-1] > 0
    for record in hist.records:
        assert record["loss"] == pytest.approx(record["reconstruction"] + 1e-2 * record["kl"],
                                               rel=1e-5)
    loaded = load_model(tmp_path / "vae.pt", VAE3D, device="cpu")
    net.eval()
    torch.testing.assert_close(loaded(x[:2]), net(x[:2]))


def test_a_large_beta_shrinks_the_kl_term():
    x, y = _blur_pairs(8, 1)
    kls = {}
    for beta in (0.0, 10.0):
        torch.manual_seed(0)
        net = VAE3D(depth=1, base=4, latent_channels=4)
        trainer = Trainer(net, torch.optim.Adam(net.parameters(), lr=1e-2), vae_step(beta),
                          seed=0)
        kls[beta] = trainer.fit(lambda epoch, rng: [(x, y)], epochs=12, progress=False)["kl"]
    assert kls[0.0][0] == pytest.approx(kls[10.0][0])  # same start
    assert kls[10.0][-1] < 0.95 * kls[10.0][0]  # β = 10 squeezes the posterior to the prior
    assert kls[0.0][-1] > kls[10.0][-1] + 0.05  # β = 0 does not


def test_sample_volume_tiles_a_map():
    torch.manual_seed(0)
    net = VAE3D(depth=1, base=4, latent_channels=2)
    vol = np.random.default_rng(0).normal(size=(12, 10, 11)).astype(np.float32)
    mean, std = sample_volume(net, vol, n=4, patch=8, stride=4, seed=3)
    assert mean.shape == std.shape == vol.shape and np.all(std >= 0) and std.max() > 0
    mean2, std2 = sample_volume(net, vol, n=4, patch=8, stride=4, seed=3)
    np.testing.assert_array_equal(mean, mean2)
    np.testing.assert_array_equal(std, std2)
    # the spread of 4 decodes is of the size of the decodes' differences from the mean map
    from cryolab.tiles import predict_volume

    det = predict_volume(net, vol, patch=8, stride=4, weight="gaussian")
    assert np.abs(mean - det).mean() < 3 * std.mean()


def test_sharpen_vae_keeps_the_grid_and_the_units(tmp_path, monkeypatch):
    import argparse

    from cryolab.commands.sharpen import sharpen_vae
    from cryolab.errors import ConfigError
    from cryolab.io import Volume

    torch.manual_seed(0)
    net = VAE3D(depth=1, base=4, latent_channels=2)
    trainer = Trainer(net, torch.optim.Adam(net.parameters()), vae_step(), seed=0,
                      checkpoint=tmp_path / "v.pt")
    x, y = _blur_pairs(2, 0)
    trainer.fit(lambda epoch, rng: [(x, y)], epochs=1, progress=False)
    rng = np.random.default_rng(0)
    vol = Volume(5.0 + 2.0 * rng.random((12, 10, 14)).astype(np.float32), (1.1, 1.1, 1.1),
                 (3.3, -2.2, 11.0))
    args = argparse.Namespace(checkpoint=tmp_path / "v.pt", device="cpu", patch=8, stride=None)
    out = sharpen_vae(vol, args)
    assert out.shape == vol.shape
    np.testing.assert_allclose(out.voxel_size, vol.voxel_size)
    np.testing.assert_allclose(out.origin, vol.origin)
    assert np.isfinite(out.data).all() and 3.0 < out.data.mean() < 7.0  # back in input units
    # the spread of the decodes, in the input's units, on the same grid (uncalibrated: a
    # checkpoint has no card)
    spread = args.uncertainty
    assert spread.shape == vol.shape and np.allclose(spread.origin, vol.origin)
    assert (spread.data >= 0).all() and 0 < spread.data.mean() < vol.data.std()
    from cryolab import weights

    monkeypatch.setattr(weights, "available", lambda: [])  # an installation without weights
    with pytest.raises(ConfigError, match="--checkpoint"):
        sharpen_vae(vol, argparse.Namespace(checkpoint=None, device=None, patch=8, stride=None,
                                            method="vae"))


def test_cli_sharpen_vae(tmp_path, capsys):
    from cryolab.cli import main
    from cryolab.io import Volume, read_map, write_map

    torch.manual_seed(0)
    net = VAE3D(depth=1, base=4, latent_channels=2)
    trainer = Trainer(net, torch.optim.Adam(net.parameters()), vae_step(), seed=0,
                      checkpoint=tmp_path / "v.pt")
    x, y = _blur_pairs(2, 0)
    trainer.fit(lambda epoch, rng: [(x, y)], epochs=1, progress=False)
    vol = Volume(np.random.default_rng(0).random((12, 10, 14)), (1.1, 1.1, 1.1), (3.3, -2.2, 11))
    src = write_map(tmp_path / "in.mrc", vol)
    out = tmp_path / "out.mrc"
    assert main(["sharpen", str(src), "--method", "vae", "--checkpoint", str(tmp_path / "v.pt"),
                 "--patch", "8", "--out", str(out)]) == 0
    got = read_map(out)
    assert got.shape == vol.shape and np.allclose(got.voxel_size, vol.voxel_size, rtol=1e-5)
    spread = read_map(tmp_path / "out_uncertainty.mrc")  # written beside the sharpened map
    assert spread.shape == vol.shape and (spread.data >= 0).all()
    unet_ckpt = tmp_path / "v.pt"
    bad = tmp_path / "bad.mrc"
    assert main(["sharpen", str(src), "--method", "unet3d", "--checkpoint", str(unet_ckpt),
                 "--out", str(bad)]) == 2
    assert "not a UNet3D" in capsys.readouterr().err and not bad.exists()
