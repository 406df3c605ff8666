"""Tests of the super-resolution 3D U-Net and its Dice loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cryolab.nn.unet3d import UNet3D, dice_coefficient, dice_loss
from cryolab.train import Trainer, supervised_step


def test_output_grid_matches_input_grid():
    for depth, n in [(1, 8), (2, 16), (3, 24)]:
        net = UNet3D(depth=depth, base=4)
        assert net(torch.zeros(2, 1, n, n, n)).shape == (2, 1, n, n, n)
    with pytest.raises(ValueError, match="divisible"):
        UNet3D(depth=3, base=4)(torch.zeros(1, 1, 12, 12, 12))


def test_layers_are_the_published_ones():
    net = UNet3D(depth=3, base=4, bottleneck=2, dropout=0.2)
    convs = [m for m in net.encoder.modules() if isinstance(m, torch.nn.Conv3d)]
    assert [(c.kernel_size, c.stride) for c in convs] == [((4, 4, 4), (2, 2, 2))] * 3
    mid = [m for m in net.middle.modules() if isinstance(m, torch.nn.Conv3d)]
    assert [(c.kernel_size, c.stride) for c in mid] == [((4, 4, 4), (1, 1, 1))] * 2
    drops = [m.p for m in net.middle.modules() if isinstance(m, torch.nn.Dropout3d)]
    assert drops == [0.2, 0.2]
    ups = [m for m in net.decoder.modules() if isinstance(m, torch.nn.ConvTranspose3d)]
    assert [(c.kernel_size, c.stride) for c in ups] == [((4, 4, 4), (2, 2, 2))] * 2
    assert any(isinstance(m, torch.nn.InstanceNorm3d) for m in net.encoder.modules())
    assert net.hparams == {"depth": 3, "base": 4, "bottleneck": 2, "dropout": 0.2}


def test_dice_coefficient_values():
    g = torch.rand(3, 1, 4, 4, 4)
    assert torch.allclose(dice_coefficient(g, g), torch.ones(3))
    assert torch.allclose(dice_coefficient(g, 2 * g), torch.full((3,), 0.8))  # 4/5
    p, t = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    assert dice_coefficient(p, t).item() == pytest.approx(0.0, abs=1e-5)
    num = 2 * (p * g[0, 0, 0, 0, :2]).sum()
    assert dice_loss(p, g[0, 0, 0, 0, :2][None]).item() == pytest.approx(
        1 - ((num + 1e-6) / (1 + (g[0, 0, 0, 0, :2] ** 2).sum() + 1e-6)).item(), rel=1e-5
    )


def test_the_network_learns_to_deblur(tmp_path):
    from scipy import ndimage

    from cryolab.train import load_model

    rng = np.random.default_rng(0)
    points = np.zeros((8, 16, 16, 16), np.float32)
    for cube in points:
        cube[tuple(rng.integers(2, 14, size=(40, 3)).T)] = 1.0
    sharp = np.stack([ndimage.gaussian_filter(c, 1.0) for c in points])
    sharp /= sharp.max()
    blurred = np.stack([ndimage.gaussian_filter(c, 2.0) for c in sharp])
    blurred /= blurred.max()
    x, y = torch.from_numpy(blurred[:, None]), torch.from_numpy(sharp[:, None])
    torch.manual_seed(0)
    net = UNet3D(depth=2, base=8, bottleneck=1, dropout=0.0)
    trainer = Trainer(net, torch.optim.Adam(net.parameters(), lr=3e-3, betas=(0.5, 0.999)),
                      supervised_step(dice_loss), checkpoint=tmp_path / "u.pt", seed=0)

    def batches(epoch, rng):
        order = rng.permutation(8)
        for i in range(0, 8, 4):
            yield x[order[i : i + 4]], y[order[i : i + 4]]

    loss = trainer.fit(batches, epochs=10, progress=False)["loss"]
    assert min(loss[-3:]) < 0.6 * loss[0]
    again = load_model(tmp_path / "u.pt", UNet3D)
    net.eval()
    with torch.no_grad():
        torch.testing.assert_close(again(x[:2]), net(x[:2]))


def _tiny_checkpoint(path, model):
    trainer = Trainer(model, torch.optim.Adam(model.parameters()), supervised_step(dice_loss),
                      checkpoint=path)

    def batches(epoch, rng):
        yield torch.rand(2, 1, 8, 8, 8), torch.rand(2, 1, 8, 8, 8)

    trainer.fit(batches, epochs=1, progress=False)
    return path


def test_cli_sharpen_keeps_the_grid_and_rejects_a_wrong_checkpoint(tmp_path, capsys):
    from cryolab.cli import main
    from cryolab.io import Volume, read_map, write_map

    ckpt = _tiny_checkpoint(tmp_path / "u.pt", UNet3D(depth=2, base=4, bottleneck=1))
    rng = np.random.default_rng(0)
    vol = Volume(rng.random((12, 10, 14)), (1.1, 1.1, 1.1), (3.3, -2.2, 11.0))
    src = write_map(tmp_path / "in.mrc", vol)
    out = tmp_path / "out.mrc"
    argv = ["sharpen", str(src), "--method", "unet3d", "--checkpoint", str(ckpt),
            "--out", str(out), "--patch", "8", "--stride", "8"]
    assert main(argv) == 0
    got = read_map(out)
    assert got.shape == vol.shape
    np.testing.assert_allclose(got.voxel_size, vol.voxel_size, rtol=1e-5)
    np.testing.assert_allclose(got.origin, vol.origin, atol=1e-4)
    assert np.isfinite(got.data).all() and got.data.std() > 0

    class NotAUNet(torch.nn.Linear):
        def __init__(self, in_features=2, out_features=2):
            super().__init__(in_features, out_features)
            self.hparams = dict(in_features=in_features, out_features=out_features)

    wrong = _tiny_checkpoint_linear(tmp_path / "w.pt", NotAUNet())
    bad_out = tmp_path / "bad.mrc"
    assert main([*argv[:5], str(wrong), "--out", str(bad_out)]) == 2
    assert "not a UNet3D" in capsys.readouterr().err
    assert not bad_out.exists()
    # without --checkpoint: the shipped model, which declines this 15 Å-wide noise map (its
    # resolution lies far outside the training range); without shipped weights: --checkpoint
    from cryolab import weights

    assert main(["sharpen", str(src), "--out", str(bad_out)]) == 2
    err = capsys.readouterr().err
    assert ("training range" if "superres" in weights.available() else "--checkpoint") in err
    assert not bad_out.exists()
    assert main(["sharpen", str(src), "--method", "magic", "--out", str(bad_out)]) == 2
    assert "unknown --method" in capsys.readouterr().err


def _tiny_checkpoint_linear(path, model):
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1),
                      supervised_step(torch.nn.functional.mse_loss), checkpoint=path)

    def batches(epoch, rng):
        yield torch.rand(4, 2), torch.rand(4, 2)

    trainer.fit(batches, epochs=1, progress=False)
    return path


def test_leave_one_map_out_never_fine_tunes_on_the_held_out_map(monkeypatch):
    """Each fold trains on every map but its own: the pairs a fold sees are recorded."""
    from cryolab import superres as sr
    from cryolab.io import Volume

    seen = []
    real_batches = sr.training_batches

    def spy(pairs, profile):
        seen.append({p.entry.pdb_id for p in pairs})
        return real_batches(pairs, profile)

    monkeypatch.setattr(sr, "training_batches", spy)
    rng = np.random.default_rng(0)

    def fake(label):
        vol = Volume(rng.random((16, 16, 16)).astype(np.float32), 1.0, (0.0, 0.0, 0.0))
        pair = sr.RealPair(label, f"maps/{label}", "structures/x", None, 3.5)
        return sr.RealMap(pair, None, vol, vol.with_data(vol.data ** 2), vol.data > 0.5, 1.0)

    reals = [fake(x) for x in ("A", "B", "C")]
    torch.manual_seed(0)
    model = UNet3D(depth=2, base=4, bottleneck=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = sr.PROFILES["smoke"]
    out = sr.finetune_leave_one_out(model, reals, cfg, steps=2, device="cpu")
    assert seen == [{"B", "C"}, {"A", "C"}, {"A", "B"}]
    assert set(out) == {"A", "B", "C"} and all(v.shape == (16, 16, 16) for v in out.values())
    for k, v in model.state_dict().items():  # the chapter's model itself is left untouched
        torch.testing.assert_close(v, before[k])
    # flips=True: each fold's prediction is flip_average of the held-out map, returned as is
    averaged = []
    real_average = sr.flip_average

    def spy_average(predict, data):
        averaged.append((data, real_average(predict, data)))
        return averaged[-1][1]

    monkeypatch.setattr(sr, "flip_average", spy_average)
    flipped = sr.finetune_leave_one_out(model, reals, cfg, steps=2, flips=True, device="cpu")
    assert [d is r.volume.data for (d, _), r in zip(averaged, reals, strict=True)] == [True] * 3
    for (_, mean), r in zip(averaged, reals, strict=True):
        np.testing.assert_array_equal(flipped[r.pair.label].data, mean)
