"""Fan-out of independent items (tomograms, AFM view sets, maps) as Dask tasks.

A *set* is a folder with one finished file or folder per item. :func:`make_set` hands every
missing item to a worker: a Dask ``LocalCluster`` on this machine by default, or any running
Dask scheduler (a dask-jobqueue SLURM/PBS cluster, a Kubernetes one) given by its address.

* **Seeds.** Item ``i`` of a set with seed ``s`` gets its own seed, :func:`item_seed`
  ``(s, i)``, drawn from numpy's ``SeedSequence(s, spawn_key=(i,))``: independent streams, and
  the same output whatever the number of workers or the order they finish in.
* **Resume.** An item is built in a hidden ``.partial-*`` folder inside the set and renamed
  into place only when complete (a rename within one file system is atomic), so an item is
  complete exactly when its name exists. A re-run skips those and removes the partial folders
  an interrupted run left behind.
* **Failures.** An item that raises does not stop the others; at the end
  :class:`~cryolab.errors.ItemsFailed` names every failed index (re-running retries them).

A progress bar counts items (finished ones from an earlier run included)::

    make_set(make, names, "out/", seed=0, workers=2)

``make(item, folder)`` writes the item into the empty ``folder`` and returns the path of what
it wrote there (a file or a folder); it must be picklable (a module-level function, or a
:func:`functools.partial` of one) to travel to the workers.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .errors import ConfigError, ItemsFailed
from .outputs import MARKER, check_folder
from .validation import option

__all__ = ["Item", "SetReport", "item_seed", "item_names", "make_set", "add_set_options",
           "structure_set", "PARTIAL"]

#: prefix of the folders in which items are built (removed when a later run starts)
PARTIAL = ".partial-"


@dataclass(frozen=True)
class Item:
    """One item of a set: its position, its file or folder name in the set, its seed."""

    index: int
    name: str
    seed: int


@dataclass(frozen=True)
class SetReport:
    """What one :func:`make_set` call did: items made now, and items already complete."""

    made: list[int]
    skipped: list[int]


def item_seed(seed: int, index: int) -> int:
    """The seed of item ``index`` of a set seeded with ``seed`` (a 32-bit integer)."""
    if seed < 0 or index < 0:
        raise ConfigError(f"seeds and item indices must be ≥ 0, not seed {seed}, index {index}")
    return int(np.random.SeedSequence(seed, spawn_key=(index,)).generate_state(1)[0])


def item_names(sources: Sequence[str], suffix: str = "") -> list[str]:
    """``NNNN_stem`` + ``suffix`` for each source file of a set (``0003_1AK4_target``): the
    index keeps names distinct and in order, the stem says what each item came from."""
    stems = []
    for source in sources:
        name = Path(source).name.removesuffix(".gz")
        stems.append(name.rsplit(".", 1)[0] if "." in name else name)
    width = max(4, len(str(len(sources) - 1)))
    return [f"{i:0{width}d}_{stem}{suffix}" for i, stem in enumerate(stems)]


def add_set_options(p: argparse.ArgumentParser, what: str) -> None:
    """``--workers`` and ``--scheduler``: how the items of a set are fanned out (Dask)."""
    p.add_argument("--workers", type=option(integer=True, ge=0), default=None,
                   help=f"make the {what} on a local Dask cluster of this many processes "
                        "(default: one per CPU core; 0: one after another, no Dask)")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="use the running Dask scheduler at ADDRESS (tcp://host:8786), e.g. a "
                        "dask-jobqueue SLURM/PBS or a Kubernetes cluster")


def _build(make: Callable[[Item, Path], Path], item: Item, out: Path) -> int:
    """Make one item in a private partial folder, then rename it into place."""
    work = Path(tempfile.mkdtemp(dir=out, prefix=f"{PARTIAL}{item.index}-"))
    try:
        made = Path(make(item, work))
        if made.parent != work:
            raise RuntimeError(f"item {item.index} was written outside its folder: {made}")
        os.replace(made, out / item.name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return item.index


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def make_set(
    make: Callable[[Item, Path], Path],
    names: Sequence[str],
    out: str | os.PathLike,
    seed: int = 0,
    workers: int | None = None,
    scheduler: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    desc: str = "items",
) -> SetReport:
    """Make every item of a set that is not complete yet.

    Args:
        make: ``make(item, folder) -> path`` writes one item (see the module docstring).
        names: file or folder name of each item in ``out``, in index order (unique).
        out: the set's folder: new, empty, or a set cryolab made earlier (resumed; a folder
            holding other files is refused).
        seed: the set's seed; item ``i`` gets :func:`item_seed` ``(seed, i)``.
        workers: processes of the local Dask cluster (default: one per CPU core); 0 makes
            the items one after another in this process, without Dask.
        scheduler: address of a running Dask scheduler (``tcp://host:8786``) to use instead
            of a local cluster.
        overwrite: remake the whole set instead of resuming it.
        progress: show a progress bar counting items (on stderr).
        desc: the progress bar's label.

    Raises:
        ItemsFailed: after every other item is done, naming the indices that failed.
    """
    if len(set(names)) != len(names):
        raise ConfigError("the items of a set need distinct names")
    if workers is not None and workers < 0:
        raise ConfigError(f"--workers must be ≥ 0, not {workers}")
    out = check_folder(out, overwrite=True)  # new, empty, or a set cryolab made
    if overwrite and out.exists():
        shutil.rmtree(out)  # check_folder found the marker: cryolab wrote it
    out.mkdir(parents=True, exist_ok=True)
    if not os.access(out, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out}: the set's folder is not writable")
    (out / MARKER).write_text("written by cryolab (a set of items)\n")
    for partial in out.glob(f"{PARTIAL}*"):  # left by an interrupted run of ours
        shutil.rmtree(partial, ignore_errors=True)
    items = [Item(i, name, item_seed(seed, i)) for i, name in enumerate(names)]
    todo = [it for it in items if not (out / it.name).exists()]
    skipped = [it.index for it in items if (out / it.name).exists()]
    failed: dict[int, str] = {}
    bar = tqdm(total=len(items), initial=len(skipped), desc=desc, unit="item",
               disable=not progress, file=sys.stderr, mininterval=0.5)
    with bar:
        if todo and workers == 0 and scheduler is None:
            for it in todo:
                try:
                    _build(make, it, out)
                except Exception as exc:  # noqa: BLE001 - any item failure is reported
                    failed[it.index] = _one_line(exc)
                bar.update(1)
        elif todo:
            failed = _on_dask(make, todo, out, workers, scheduler, bar)
    if failed:
        first = min(failed)
        raise ItemsFailed(
            f"{out}: {len(failed)} of {len(items)} items failed, indices "
            f"{', '.join(map(str, sorted(failed)))} (item {first}: {failed[first]}); "
            "re-run the same command to retry them")
    return SetReport([it.index for it in todo], skipped)


def _on_dask(make: Callable[[Item, Path], Path], todo: list[Item], out: Path,
             workers: int | None, scheduler: str | None, bar: tqdm) -> dict[int, str]:
    """Run the items as Dask tasks; returns the failures by index."""
    import dask
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    try:
        if scheduler:
            client = Client(scheduler, timeout="20s")
        else:
            # Dask sets MALLOC_TRIM_THRESHOLD_ in its workers to hand memory back sooner;
            # with it the simulators' many large temporary arrays ran 2–3× slower here
            # (benchmarks/bench_fanout.py), so local workers keep glibc's own malloc tuning
            # (and one BLAS/OpenMP thread each, as Dask sets by default).
            key = "distributed.nanny.pre-spawn-environ"
            environ = {k: v for k, v in dask.config.get(key, {}).items()
                       if k != "MALLOC_TRIM_THRESHOLD_"}
            with dask.config.set({key: environ}):
                cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1,
                                       threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=logging.ERROR)
            client = Client(cluster)
    except OSError as exc:
        raise ConfigError(f"--scheduler {scheduler}: cannot reach it ({exc})") from None
    failed: dict[int, str] = {}
    try:
        futures = {client.submit(_build, make, it, out, pure=False): it.index for it in todo}
        for future in as_completed(futures):
            if future.status != "finished":
                failed[futures[future]] = _one_line(future.exception())
            bar.update(1)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return failed


def structure_set(make: Callable[[dict, Item, Path], Path], args: argparse.Namespace,
                  what: str, suffix: str = "", seed: int = 0) -> int:
    """Run a per-structure command (``afm``, ``simulate-map``) over ``args.structure``, a
    list, as a set in ``args.out``: item *i* is made by ``make(settings, item, folder)`` with
    ``settings`` the command's options; prints one summary line and returns 0."""
    from functools import partial

    settings = {k: v for k, v in vars(args).items() if k != "func"}
    report = make_set(partial(make, settings), item_names(args.structure, suffix), args.out,
                      seed=seed, workers=args.workers, scheduler=args.scheduler,
                      overwrite=args.overwrite, progress=not args.quiet, desc=what)
    print(f"{args.out}: {len(report.made)} {what} made, {len(report.skipped)} already there")
    return 0
