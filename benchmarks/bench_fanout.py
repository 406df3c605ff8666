"""Scaling of dataset synthesis on Dask (cryolab.fanout): tomograms per second against workers.

The command a user runs, ``cryolab simulate-tomo CONFIG --n N --out DIR --workers W``, through
:func:`cryolab.fanout.make_set`, for W = 0 (one after another in this process, no Dask) and
W = 1, 2, ... processes of a local Dask cluster. Each item is a 2000×2000×400 Å specimen at
10 Å imaged over 61 tilts (about a second of work on one core). The cluster's start-up (a few
seconds, paid once per command) is timed apart, so that the rate of a long run is visible,
and so is the CPU the machine gives W busy processes at that moment relative to one (on a
shared machine, fewer cores than it has).

    python benchmarks/bench_fanout.py [--n 12] [--workers 1 2] [--out book/figures]

Writes ``fanout_scaling.json`` (machine, settings, timings), ``fanout_scaling.md`` (the table)
and ``fanout_scaling.png`` (the curve) into ``--out``; book/scale.md shows the last two. The
serial run is timed twice: with torch's default threads, and with one thread as each Dask
worker has. Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import time
from functools import partial
from pathlib import Path

CONFIG = {
    "seed": 0,
    "specimen": {"size": [2000, 2000, 400], "pixel_size": 10,
                 "layers": [{"particles": ["ribosome", "proteasome_20s"], "density": 0.15,
                             "iterations": 200}],
                 "gold": 2},
    "microscope": {"min_angle": -60, "max_angle": 60, "step": 2, "dose": 100},
}


def cluster_startup(workers: int) -> float:
    """Seconds to start and stop a local Dask cluster of ``workers`` processes."""
    from distributed import Client, LocalCluster

    start = time.perf_counter()
    with LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster, Client(cluster):
        pass
    return time.perf_counter() - start


def _spin(seconds: float) -> int:
    """Count loop iterations for ``seconds`` of wall time (pure CPU work)."""
    end, count = time.perf_counter() + seconds, 0
    while time.perf_counter() < end:
        count += 1
    return count


def cpu_ceiling(processes: int, seconds: float = 3.0) -> float:
    """How many cores' worth of work ``processes`` busy processes get here, relative to one:
    the most any number of workers can gain on this machine at this moment."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1) as pool:
        one = pool.submit(_spin, seconds).result()
    with ProcessPoolExecutor(processes) as pool:
        many = sum(pool.map(_spin, [seconds] * processes))
    return many / one


def run(n: int, workers: int, threads: int | None = None) -> dict:
    """Time one set of ``n`` tomograms; ``threads`` limits torch's threads in this process
    (the Dask workers run one thread each, as Dask sets ``OMP_NUM_THREADS=1``)."""
    import torch

    from cryolab.commands.tomo import _simulate_item
    from cryolab.fanout import make_set
    from cryolab.tomo.simulate import config_from_dict

    cfg = config_from_dict(CONFIG)
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        make_set(partial(_simulate_item, cfg, False), [f"tomo_{i:04d}" for i in range(n)],
                 Path(tmp) / "set", seed=0, workers=workers, progress=False)
        seconds = time.perf_counter() - start
    torch.set_num_threads(before)
    startup = cluster_startup(workers) if workers else 0.0
    return {"workers": workers, "torch_threads": threads or before, "items": n,
            "seconds": seconds, "startup_seconds": startup,
            "cpu_ceiling": cpu_ceiling(workers) if workers else 1.0,
            "items_per_second": n / seconds,
            "items_per_second_after_startup": n / max(seconds - startup, 1e-9)}


def figure(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    serial, single = rows[0], rows[1]
    dask = [r for r in rows if r["workers"] > 0]
    w = [r["workers"] for r in dask]
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.plot(w, [single["items_per_second"] * k for k in w], ":", color="grey",
            label="ideal: one-thread serial rate × workers")
    ax.plot(w, [single["items_per_second"] * r["cpu_ceiling"] for r in dask], "-.",
            color="tab:green", label="one-thread serial rate × cores free to us")
    ax.plot(w, [r["items_per_second"] for r in dask], "o-", label="Dask, whole command")
    ax.plot(w, [r["items_per_second_after_startup"] for r in dask], "s--",
            label="Dask, cluster start-up left out")
    ax.axhline(serial["items_per_second"], color="k", lw=0.8,
               label=f"serial, no Dask, {serial['torch_threads']} torch threads")
    ax.axhline(single["items_per_second"], color="k", lw=0.8, ls="--",
               label="serial, no Dask, 1 torch thread")
    ax.set_xlabel("worker processes")
    ax.set_ylabel("tomograms per second")
    ax.set_xticks(w)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    ax.set_title(f"simulate-tomo --n {serial['items']} on {os.cpu_count()} CPU cores",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16, help="tomograms per run (16)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                        help="Dask worker counts to time (1 2)")
    parser.add_argument("--out", type=Path, default=Path("book/figures"),
                        help="folder for fanout_scaling.json/.png (book/figures)")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    rows = [run(args.n, 0), run(args.n, 0, threads=1)]
    for w in args.workers:
        rows.append(run(args.n, w))
    table = ["| run | seconds for the set | tomograms/s | tomograms/s after start-up | "
             "cores' worth of CPU we got |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        what = (f"{r['workers']} Dask worker{'s' if r['workers'] > 1 else ''}" if r["workers"]
                else f"serial, no Dask, {r['torch_threads']} torch thread"
                + ("s" if r["torch_threads"] > 1 else ""))
        table.append(f"| {what} | {r['seconds']:.1f} | {r['items_per_second']:.2f} | "
                     + (f"{r['items_per_second_after_startup']:.2f} (start-up "
                        f"{r['startup_seconds']:.1f} s) | {r['cpu_ceiling']:.2f} |"
                        if r["workers"] else "– | – |"))
    print("\n".join(table))
    args.out.mkdir(parents=True, exist_ok=True)
    load = (load_before, os.getloadavg()[0])
    record = {"machine": {"cpu_count": os.cpu_count(), "processor": platform.processor(),
                          "python": platform.python_version(),
                          "load_average_1min_before_after": load},
              "config": CONFIG, "command": "cryolab simulate-tomo CONFIG --n N --workers W",
              "rows": rows}
    (args.out / "fanout_scaling.json").write_text(json.dumps(record, indent=2) + "\n")
    (args.out / "fanout_scaling.md").write_text(
        f"Measured by `python benchmarks/bench_fanout.py --n {args.n}` on "
        f"{os.cpu_count()} CPU cores (1-minute load average {load[0]:.1f} before, "
        f"{load[1]:.1f} after: other jobs shared the cores):\n\n" + "\n".join(table) + "\n")
    figure(rows, args.out / "fanout_scaling.png")
    print(f"wrote {args.out / 'fanout_scaling.json'} and fanout_scaling.png")


if __name__ == "__main__":
    main()
