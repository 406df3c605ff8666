"""cryolab.train: learning, exact resume, checkpoint errors, the GAN step."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cryolab.errors import CheckpointError
from cryolab.train import Trainer, gan_step, iterate_minibatches, load_model, supervised_step


class TinyNet(nn.Module):
    def __init__(self, width: int = 8, dropout: float = 0.2) -> None:
        super().__init__()
        self.hparams = {"width": width, "dropout": dropout}
        self.net = nn.Sequential(
            nn.Linear(4, width), nn.ReLU(), nn.Dropout(dropout), nn.Linear(width, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _data(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5, 3.0], np.float32))[:, None]
    return x, y


def _trainer(checkpoint=None, width=8, lr=1e-2, config=None):
    torch.manual_seed(0)
    model = TinyNet(width)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    return Trainer(
        model, opt, supervised_step(nn.functional.mse_loss), checkpoint=checkpoint,
        config=config or {"width": width}, seed=7, device="cpu",
    )


def _batches(x, y):
    return lambda epoch, rng: iterate_minibatches((x, y), 16, rng)


def test_loss_falls():
    x, y = _data()
    history = _trainer().fit(_batches(x, y), epochs=30, progress=False)
    assert history["loss"][-1] < 0.2 * history["loss"][0]


def test_interrupted_and_resumed_equals_uninterrupted(tmp_path):
    x, y = _data()
    straight = _trainer()
    straight.fit(_batches(x, y), epochs=6, progress=False)

    ckpt = tmp_path / "run.pt"
    first = _trainer(ckpt)
    first.fit(_batches(x, y), epochs=6, stop_after=3, progress=False)
    assert first.epoch == 3
    second = _trainer(ckpt)  # a new process would start like this
    history = second.fit(_batches(x, y), epochs=6, progress=False)
    assert second.epoch == 6 and len(history) == 6
    for a, b in zip(straight.model.parameters(), second.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(history["loss"], straight.history["loss"], rtol=1e-6)


def test_checkpoint_of_another_config_starts_afresh(tmp_path):
    x, y = _data()
    ckpt = tmp_path / "run.pt"
    _trainer(ckpt).fit(_batches(x, y), epochs=2, progress=False)
    other = _trainer(ckpt, config={"width": 8, "lr": "changed"})
    assert other.resume() is False
    other.fit(_batches(x, y), epochs=1, progress=False)
    assert other.epoch == 1


def test_load_model_rebuilds_and_checks_architecture(tmp_path):
    x, y = _data()
    ckpt = tmp_path / "run.pt"
    trainer = _trainer(ckpt, width=5)
    trainer.fit(_batches(x, y), epochs=1, progress=False)
    model = load_model(ckpt, TinyNet, device="cpu")
    assert model.hparams["width"] == 5
    with torch.no_grad():
        inputs = torch.from_numpy(x)
        torch.testing.assert_close(model(inputs), trainer.model.eval()(inputs))

    class OtherNet(TinyNet):
        pass

    with pytest.raises(CheckpointError, match="TinyNet, not a OtherNet"):
        load_model(ckpt, OtherNet)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_model(tmp_path / "absent.pt", TinyNet)
    (tmp_path / "junk.pt").write_text("junk")
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_model(tmp_path / "junk.pt", TinyNet)


def test_resume_with_wrong_sizes_is_a_clear_error(tmp_path):
    x, y = _data()
    ckpt = tmp_path / "run.pt"
    _trainer(ckpt, width=5, config={"same": 1}).fit(_batches(x, y), epochs=1, progress=False)
    with pytest.raises(CheckpointError, match="do not fit"):
        _trainer(ckpt, width=6, config={"same": 1}).fit(_batches(x, y), epochs=2, progress=False)


def test_plateau_scheduler_and_validation_are_logged():
    x, y = _data()
    trainer = _trainer()
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        trainer.optimizers["model"], factor=0.5, patience=0
    )
    trainer.schedulers = {"model": sched}
    trainer.monitor = "val_loss"
    history = trainer.fit(
        _batches(x, y), epochs=3, progress=False, validate=lambda t: {"val_loss": 1.0}
    )
    assert history["val_loss"] == [1.0, 1.0, 1.0]
    assert history["lr_model"][-1] < history["lr_model"][0]


def test_gan_step_updates_both_models():
    torch.manual_seed(0)
    generator = nn.Sequential(nn.Linear(4, 4))
    discriminator = nn.Sequential(nn.Linear(4, 1))
    before = [p.detach().clone() for p in (*generator.parameters(), *discriminator.parameters())]
    trainer = Trainer(
        {"generator": generator, "discriminator": discriminator},
        {
            "generator": torch.optim.Adam(generator.parameters(), 1e-2),
            "discriminator": torch.optim.Adam(discriminator.parameters(), 1e-2),
        },
        gan_step(nn.functional.smooth_l1_loss, adversarial_weight=0.01),
        device="cpu",
    )
    x, y = _data()
    y4 = np.repeat(y, 4, axis=1)
    history = trainer.fit(
        lambda e, rng: iterate_minibatches((x, y4), 16, rng), epochs=20, progress=False
    )
    after = [p.detach() for p in (*generator.parameters(), *discriminator.parameters())]
    assert all(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert history["reconstruction"][-1] < history["reconstruction"][0]
    assert {"adversarial", "discriminator"} <= set(history.records[0])


# --------------------------------------------------------------------------- safe loading


class _CreatesAFile:
    """Unpickling this object opens (creates) ``target``: code run by reading a file."""

    def __init__(self, target) -> None:
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


@pytest.mark.parametrize("where", ["architecture", "config", "models"])
def test_a_crafted_checkpoint_is_refused_without_running_code(tmp_path, where):
    x, y = _data()
    ckpt = tmp_path / "run.pt"
    _trainer(ckpt).fit(_batches(x, y), epochs=1, progress=False)
    state = torch.load(ckpt, weights_only=True)
    state[where] = {"model": _CreatesAFile(tmp_path / "PWNED")}
    torch.save(state, tmp_path / "evil.pt")
    assert not (tmp_path / "PWNED").exists()
    with pytest.raises(CheckpointError, match=r"evil.pt: refused") as info:
        load_model(tmp_path / "evil.pt", TinyNet)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "PWNED").exists()
    trainer = _trainer(tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="refused"):
        trainer.fit(_batches(x, y), epochs=2, progress=False)
    assert not (tmp_path / "PWNED").exists()


def test_checkpoints_hold_only_plain_values_and_resume(tmp_path):
    """numpy settings are stored as plain numbers: the file loads with ``weights_only=True``
    and a trainer with the same (numpy) settings resumes from it."""
    x, y = _data()
    ckpt = tmp_path / "run.pt"
    config = {"width": np.int64(8), "lr": np.float32(0.01), "shape": np.arange(3),
              "sizes": (np.float64(1.5), 2)}
    _trainer(ckpt, config=config).fit(_batches(x, y), epochs=1, progress=False)
    state = torch.load(ckpt, weights_only=True)
    assert state["config"] == {"width": 8, "lr": pytest.approx(0.01), "shape": [0, 1, 2],
                               "sizes": (1.5, 2)}
    assert type(state["config"]["width"]) is int
    resumed = _trainer(ckpt, config=config)
    assert resumed.resume() and resumed.epoch == 1


def test_checkpoint_mode_follows_the_umask(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        path = _trainer().save(tmp_path / "run.pt")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
