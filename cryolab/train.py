"""One training loop for every chapter.

:class:`Trainer` runs epochs of a *step function* over batches, shows a progress bar, keeps a
metrics history, and writes a checkpoint after every epoch from which training resumes exactly:
each epoch reseeds torch and hands the batch sampler its own ``numpy`` generator derived from
``(seed, epoch)``, so an interrupted and resumed run sees the same batches and the same dropout
masks as an uninterrupted one.

A step function takes the trainer and one batch and returns a dict of floats to log::

    trainer = Trainer(model, torch.optim.Adam(model.parameters()), supervised_step(loss))
    history = trainer.fit(sample_batches, epochs=10, validate=score)

:func:`supervised_step` covers plain regression/segmentation; :func:`gan_step` is the
generator/discriminator update of struc2mapGAN. On a GPU the forward passes run in bfloat16
autocast (mixed precision); on the CPU in float32.

Started by ``torchrun --nproc_per_node=N`` (after :func:`init_distributed`), the same trainer
runs data-parallel: every model is wrapped in PyTorch's ``DistributedDataParallel`` (NCCL on
GPUs, gloo on the CPU; BatchNorm becomes SyncBatchNorm on GPUs), every process draws the same
global batch from the epoch's generator and keeps its own share of the samples
(:func:`shard`), gradients are averaged so that one step equals one step on the whole batch in
one process, the logged numbers are those of the whole batch, and only rank 0 shows progress
and writes checkpoints.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import distributed as dist
from torch import nn
from tqdm import tqdm

from . import __version__
from .errors import CheckpointError
from .outputs import atomic_file

__all__ = [
    "pick_device",
    "Trainer",
    "History",
    "supervised_step",
    "gan_step",
    "load_model",
    "read_checkpoint",
    "set_seed",
    "iterate_minibatches",
    "init_distributed",
    "is_main_process",
    "shard",
]

Batch = Any
StepFn = Callable[["Trainer", Batch], Mapping[str, float]]
BatchSource = Callable[[int, np.random.Generator], Iterable[Batch]]


def pick_device(prefer: str | None = None) -> torch.device:
    """``prefer`` if given, else CUDA when present, else the CPU."""
    if prefer:
        return torch.device(prefer)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def set_seed(seed: int) -> np.random.Generator:
    """Seed torch (CPU and CUDA) and return a numpy generator for the same seed."""
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


# ------------------------------------------------------------------- data-parallel training


def init_distributed() -> int:
    """Join the process group that ``torchrun`` describes in the environment (``WORLD_SIZE``,
    ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``): NCCL when CUDA is present, gloo otherwise.

    Returns the number of processes; outside ``torchrun`` that is 1 and nothing is started.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1 or not dist.is_available():
        return 1
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group("nccl")
        else:
            dist.init_process_group("gloo")
    return dist.get_world_size()


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def is_main_process() -> bool:
    """True in a single-process run and on rank 0 of a data-parallel one."""
    return not _distributed() or dist.get_rank() == 0


def _leaves(batch: Batch) -> Iterator[torch.Tensor | np.ndarray]:
    if isinstance(batch, (torch.Tensor, np.ndarray)) and batch.ndim > 0:
        yield batch
    elif isinstance(batch, Mapping):
        for value in batch.values():
            yield from _leaves(value)
    elif isinstance(batch, (list, tuple)):
        for value in batch:
            yield from _leaves(value)


def _cut(batch: Batch, lo: int, hi: int) -> Batch:
    if isinstance(batch, (torch.Tensor, np.ndarray)) and batch.ndim > 0:
        return batch[lo:hi]
    if isinstance(batch, Mapping):
        return {k: _cut(v, lo, hi) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_cut(v, lo, hi) for v in batch)
    return batch


def shard(batch: Batch, rank: int, world: int) -> tuple[Batch, float]:
    """Process ``rank``'s share of a global batch, and that share's fraction of the samples.

    Every tensor or array in the batch (first axis = samples, the same number B in each) is
    cut into ``world`` contiguous parts whose sizes differ by at most one, as a
    ``DistributedSampler`` without padding would deal them. A process whose part is empty
    (B < world) gets the first sample with a fraction of 0: it still runs the step, as every
    process must, but its gradients and logged numbers count for nothing.
    """
    sizes = {len(a) for a in _leaves(batch)}
    if len(sizes) != 1 or 0 in sizes:
        raise ValueError(f"a batch must hold one number of samples ≥ 1 in every array, not "
                         f"{sorted(sizes)}")
    total = sizes.pop()
    lo, hi = total * rank // world, total * (rank + 1) // world
    if hi == lo:
        return _cut(batch, 0, 1), 0.0
    return _cut(batch, lo, hi), (hi - lo) / total


class _Dispatch(nn.Module):
    """Lets one ``DistributedDataParallel`` forward call any method of the wrapped model
    (``forward``, a VAE's ``run``, ...), so gradients of every method are averaged."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.model, method)(*args, **kwargs)


class _Replica:
    """A model as step functions see it in a data-parallel run: calling it, or any method of
    its own class, runs through ``DistributedDataParallel``; everything else (parameters,
    ``train``/``eval``, attributes) is the model itself."""

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        from torch.nn.parallel import DistributedDataParallel

        self.module = model
        ids = [device.index] if device.type == "cuda" else None
        self._ddp = DistributedDataParallel(_Dispatch(model), device_ids=ids)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._ddp("forward", *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.module, name)
        if callable(value) and not hasattr(nn.Module, name) and hasattr(type(self.module), name):
            return lambda *args, **kwargs: self._ddp(name, *args, **kwargs)
        return value


@dataclass
class History:
    """One record per epoch: ``{"epoch": e, "loss": ..., "val_...": ..., "seconds": ...}``."""

    records: list[dict[str, float]] = field(default_factory=list)

    def __getitem__(self, key: str) -> list[float]:
        """The series of one logged quantity across epochs (NaN where missing)."""
        return [r.get(key, float("nan")) for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def to_frame(self):  # noqa: ANN201 - pandas is imported lazily
        """The history as a pandas DataFrame indexed by epoch."""
        import pandas as pd

        return pd.DataFrame(self.records).set_index("epoch")


class Trainer:
    """Trains one or more named models with their optimisers.

    Args:
        models: a module, or ``{"generator": G, "discriminator": D}`` for several.
        optimizers: an optimiser, or a dict with the same keys as ``models``.
        step: the step function (see :func:`supervised_step`, :func:`gan_step`).
        checkpoint: file written after every epoch; if it exists, training resumes from it.
        config: settings stored in the checkpoint (sizes, learning rate, profile, ...).
        schedulers: learning-rate schedulers by model name; a ``ReduceLROnPlateau`` steps on
            the logged quantity named ``monitor``, others step once per epoch.
        monitor: the logged quantity plateau schedulers watch (default ``"loss"``).
        device: torch device; default :func:`pick_device`.
        amp: bfloat16 autocast on CUDA (default on when the device is CUDA).
        seed: base seed of the per-epoch seeds.
        grad_clip: clip gradient norm to this value when given.
    """

    def __init__(
        self,
        models: nn.Module | Mapping[str, nn.Module],
        optimizers: torch.optim.Optimizer | Mapping[str, torch.optim.Optimizer],
        step: StepFn,
        *,
        checkpoint: str | os.PathLike | None = None,
        config: Mapping[str, Any] | None = None,
        schedulers: Mapping[str, Any] | None = None,
        monitor: str = "loss",
        device: str | torch.device | None = None,
        amp: bool | None = None,
        seed: int = 0,
        grad_clip: float | None = None,
    ) -> None:
        self.models = dict(models) if isinstance(models, Mapping) else {"model": models}
        self.optimizers = (
            dict(optimizers) if isinstance(optimizers, Mapping) else {"model": optimizers}
        )
        if set(self.optimizers) - set(self.models):
            raise ValueError("every optimiser needs a model of the same name")
        self.step_fn = step
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.config = dict(config or {})
        self.schedulers = dict(schedulers or {})
        self.monitor = monitor
        self.device = pick_device(str(device) if device else None)
        self.rank, self.world = (dist.get_rank(), dist.get_world_size()) if _distributed() \
            else (0, 1)
        if _distributed() and self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        self.amp = self.device.type == "cuda" if amp is None else amp
        self.seed = seed
        self.grad_clip = grad_clip
        self.history = History()
        self.epoch = 0  # epochs completed
        for model in self.models.values():
            model.to(self.device)
        self._replicas: dict[str, _Replica] = {}
        if _distributed():
            for name, model in self.models.items():
                if self.device.type == "cuda":  # batch statistics over the global batch
                    nn.SyncBatchNorm.convert_sync_batchnorm(model)
                self._replicas[name] = _Replica(model, self.device)
        self._loss_scale = 1.0  # this process's share of the batch × world size

    @property
    def model(self) -> nn.Module:
        """The first (or only) model, as step functions call it (see :meth:`replica`)."""
        return self.replica()

    def replica(self, name: str | None = None) -> nn.Module:
        """Model ``name`` (default: the first) as a step function should call it: the model
        itself in one process, its ``DistributedDataParallel`` replica in a data-parallel run
        (calls average the gradients across processes; attributes are the model's)."""
        name = name or next(iter(self.models))
        return self._replicas[name] if name in self._replicas else self.models[name]

    # ---------------------------------------------------------------- helpers for step fns
    def to_device(self, batch: Batch) -> Batch:
        """Move a tensor, array, or tuple/list/dict of them to the training device."""
        if isinstance(batch, torch.Tensor):
            return batch.to(self.device, non_blocking=True)
        if isinstance(batch, np.ndarray):
            return torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)
        if isinstance(batch, Mapping):
            return {k: self.to_device(v) for k, v in batch.items()}
        if isinstance(batch, (list, tuple)):
            return type(batch)(self.to_device(b) for b in batch)
        return batch

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed precision (bfloat16) on CUDA when ``amp``; a no-op otherwise."""
        if self.amp and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def optimise(self, loss: torch.Tensor, name: str = "model") -> None:
        """Back-propagate ``loss`` and step the optimiser of model ``name``."""
        optimizer = self.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        if self._loss_scale != 1.0:  # data-parallel: gradients of the global batch's mean
            loss = loss * self._loss_scale
        loss.backward()
        if self.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.models[name].parameters(), self.grad_clip)
        optimizer.step()

    # ------------------------------------------------------------------------- training
    def fit(
        self,
        batches: BatchSource,
        epochs: int,
        validate: Callable[[Trainer], Mapping[str, float]] | None = None,
        progress: bool = True,
        stop_after: int | None = None,
    ) -> History:
        """Train until ``epochs`` epochs are complete (resuming from the checkpoint if any).

        Args:
            batches: ``batches(epoch, rng)`` yields the epoch's batches; it must draw all its
                randomness from ``rng`` for resume to be exact.
            epochs: total number of epochs.
            validate: called in eval mode after each epoch; its dict is logged too.
            progress: show a tqdm progress bar (on stderr).
            stop_after: stop after this many epochs of *this call* (to test resuming).
        """
        self.resume()
        bar = tqdm(
            total=epochs, initial=self.epoch, disable=not progress or not is_main_process(),
            desc="epochs",
            file=sys.stderr, ncols=100, mininterval=1.0,
        )
        done_here = 0
        with bar:
            while self.epoch < epochs and (stop_after is None or done_here < stop_after):
                record = self._run_epoch(batches, validate)
                self.history.records.append(record)
                self.epoch += 1
                done_here += 1
                if self.checkpoint and is_main_process():
                    self.save(self.checkpoint)
                if _distributed():  # every process leaves with the checkpoint on disk
                    dist.barrier()
                bar.set_postfix({k: f"{v:.4g}" for k, v in record.items() if k != "epoch"})
                bar.update(1)
        return self.history

    def _run_epoch(
        self, batches: BatchSource, validate: Callable[[Trainer], Mapping[str, float]] | None
    ) -> dict[str, float]:
        start = time.perf_counter()
        epoch_seed = _epoch_seed(self.seed, self.epoch)
        torch.manual_seed(epoch_seed)
        rng = np.random.default_rng(epoch_seed)
        for model in self.models.values():
            model.train()
        sums: dict[str, float] = {}
        count = 0
        for batch in batches(self.epoch, rng):
            weight = 1.0
            if self._replicas:
                batch, weight = shard(batch, self.rank, self.world)
                self._loss_scale = weight * self.world
            logged = self.step_fn(self, batch)
            for key, value in logged.items():
                sums[key] = sums.get(key, 0.0) + weight * float(value)
            count += 1
        if count == 0:
            raise ValueError("the batch source yielded no batches")
        if self._replicas:  # the whole batch's numbers: shares weighted by their samples
            sums = self._sum_over_processes(sums)
        record: dict[str, float] = {"epoch": float(self.epoch)}
        record.update({k: v / count for k, v in sums.items()})
        if validate is not None:
            for model in self.models.values():
                model.eval()
            with torch.no_grad():
                record.update({k: float(v) for k, v in validate(self).items()})
        for name, scheduler in self.schedulers.items():
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(record[self.monitor])
            else:
                scheduler.step()
            record[f"lr_{name}"] = self.optimizers[name].param_groups[0]["lr"]
        record["seconds"] = time.perf_counter() - start
        return record

    def _sum_over_processes(self, values: dict[str, float]) -> dict[str, float]:
        keys = sorted(values)
        on = self.device if dist.get_backend() == "nccl" else torch.device("cpu")
        total = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=on)
        dist.all_reduce(total)
        return dict(zip(keys, total.tolist(), strict=True))

    # ----------------------------------------------------------------------- checkpoints
    def state(self) -> dict[str, Any]:
        """Everything needed to resume: weights, optimisers, schedulers, epoch, history.

        Settings, architecture and history are stored as plain Python values (numpy scalars
        and arrays converted), so the file loads with ``torch.load(weights_only=True)``.
        """
        return {
            "cryolab_version": __version__,
            "epoch": self.epoch,
            "config": _plain(self.config),
            "architecture": {n: _plain(_describe(m)) for n, m in self.models.items()},
            "models": {n: m.state_dict() for n, m in self.models.items()},
            "optimizers": {n: o.state_dict() for n, o in self.optimizers.items()},
            "schedulers": {n: s.state_dict() for n, s in self.schedulers.items()},
            "history": _plain(self.history.records),
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the checkpoint atomically, with the umask's mode
        (:func:`cryolab.outputs.atomic_file`)."""
        path = Path(path)
        with atomic_file(path) as tmp:
            torch.save(self.state(), tmp)
        return path

    def resume(self) -> bool:
        """Load the checkpoint if it exists and matches; return whether training resumed.

        A checkpoint written with another ``config`` is not resumed (training starts afresh
        and overwrites it); one whose weights do not fit the models raises
        :class:`~cryolab.errors.CheckpointError`.
        """
        if self.checkpoint is None or not self.checkpoint.is_file() or self.epoch > 0:
            return False
        state = read_checkpoint(self.checkpoint)
        if state.get("config") != _plain(self.config):
            return False
        _check_architecture(self.checkpoint, state, self.models)
        for name, model in self.models.items():
            _load_weights(self.checkpoint, model, state["models"][name])
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        for name, sched in self.schedulers.items():
            sched.load_state_dict(state["schedulers"][name])
        self.epoch = int(state["epoch"])
        self.history = History(list(state["history"]))
        return True


def _describe(model: nn.Module) -> dict[str, Any]:
    return {"class": type(model).__name__, "hparams": dict(getattr(model, "hparams", {}))}


def _plain(value: Any) -> Any:
    """``value`` with numpy scalars and arrays turned into Python numbers and lists (dicts,
    lists and tuples are walked), so that a checkpoint holds only what ``weights_only``
    loading accepts."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    return value


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``: tensors and plain Python values only, so
    a crafted file cannot run code while it is read."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        if isinstance(exc, pickle.UnpicklingError) and "Unsupported global" in str(exc):
            raise CheckpointError(
                f"{path}: refused: it holds objects other than tensors and plain values "
                "(loading it could run code); only checkpoints written by cryolab are read"
            ) from None
        why = ("not a PyTorch file" if isinstance(exc, pickle.UnpicklingError)
               else (str(exc).splitlines() or [type(exc).__name__])[0])
        raise CheckpointError(f"{path}: not a readable checkpoint ({why})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a cryolab checkpoint (holds a "
                              f"{type(state).__name__}, not a dict)")
    return state


def _check_architecture(path: Path, state: Mapping[str, Any], models: Mapping[str, nn.Module]):
    stored = state.get("architecture", {})
    for name, model in models.items():
        if name not in stored:
            raise CheckpointError(f"{path}: holds no weights for model {name!r}")
        if stored[name]["class"] != type(model).__name__:
            raise CheckpointError(
                f"{path}: written for a {stored[name]['class']}, not a {type(model).__name__}"
            )


def _load_weights(path: Path, model: nn.Module, weights: Mapping[str, torch.Tensor]) -> None:
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(
            f"{path}: weights do not fit this {type(model).__name__} ({first}); "
            "was it trained with other sizes?"
        ) from None


def load_model(
    path: str | os.PathLike,
    model_class: type[nn.Module],
    name: str = "model",
    device: str | torch.device | None = None,
) -> nn.Module:
    """Rebuild a trained model from a checkpoint: ``model_class(**hparams)`` + its weights.

    Raises :class:`~cryolab.errors.CheckpointError` when the file is missing or unreadable, or
    was written for another architecture.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    state = read_checkpoint(path)
    stored = state.get("architecture", {})
    if name not in stored:
        raise CheckpointError(f"{path}: holds no model named {name!r} (has {sorted(stored)})")
    if stored[name]["class"] != model_class.__name__:
        raise CheckpointError(
            f"{path}: written for a {stored[name]['class']}, not a {model_class.__name__}"
        )
    model = model_class(**stored[name]["hparams"])
    _load_weights(path, model, state["models"][name])
    return model.to(pick_device(str(device) if device else None)).eval()


# ------------------------------------------------------------------------- step functions


def supervised_step(loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> StepFn:
    """A step for ``(input, target)`` batches: ``loss_fn(model(input), target)``."""

    def step(trainer: Trainer, batch: Batch) -> dict[str, float]:
        x, y = trainer.to_device(batch)
        with trainer.autocast():
            prediction = trainer.model(x)
        loss = loss_fn(prediction.float(), y)
        trainer.optimise(loss)
        return {"loss": loss.item()}

    return step


def gan_step(
    reconstruction: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    adversarial_weight: float = 0.01,
    reconstruction_weight: float = 1.0,
) -> StepFn:
    """The generator/discriminator update of a conditional GAN (struc2mapGAN).

    Models must be named ``"generator"`` and ``"discriminator"`` (the latter returns logits).
    Discriminator loss: ½[BCE(D(y), 1) + BCE(D(G(x)), 0)]. Generator loss:
    ``reconstruction_weight``·reconstruction(G(x), y) + ``adversarial_weight``·BCE(D(G(x)), 1).
    Setting either weight to 0 gives the ablations without that term.
    """
    bce = nn.BCEWithLogitsLoss()

    def step(trainer: Trainer, batch: Batch) -> dict[str, float]:
        x, y = trainer.to_device(batch)
        generator = trainer.replica("generator")
        discriminator = trainer.replica("discriminator")
        with trainer.autocast():
            fake = generator(x)
            real_logit = discriminator(y).float()
            fake_logit = discriminator(fake.detach()).float()
        d_loss = 0.5 * (
            bce(real_logit, torch.ones_like(real_logit))
            + bce(fake_logit, torch.zeros_like(fake_logit))
        )
        trainer.optimise(d_loss, "discriminator")
        with trainer.autocast():
            fooled = discriminator(fake).float()
        rec = reconstruction(fake.float(), y)
        adv = bce(fooled, torch.ones_like(fooled))
        g_loss = reconstruction_weight * rec + adversarial_weight * adv
        trainer.optimise(g_loss, "generator")
        return {
            "loss": g_loss.item(),
            "reconstruction": rec.item(),
            "adversarial": adv.item(),
            "discriminator": d_loss.item(),
        }

    return step


def iterate_minibatches(
    arrays: tuple[np.ndarray, ...], batch_size: int, rng: np.random.Generator
) -> Iterator[tuple[torch.Tensor, ...]]:
    """Shuffle aligned arrays (first axis = samples) and yield float32 tensor minibatches."""
    n = len(arrays[0])
    order = rng.permutation(n)
    for start in range(0, n, batch_size):
        pick = order[start : start + batch_size]
        yield tuple(torch.from_numpy(np.ascontiguousarray(a[pick])) for a in arrays)

