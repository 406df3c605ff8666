"""Execute the book's notebooks with papermill and report each one's run time and peak memory.

    python book/execute.py --profile book --out _build/executed [--jobs N] [NOTEBOOK ...]

Each notebook runs in its own process (so the peak resident memory of its kernel can be read
from ``getrusage``), in the ``notebooks/`` folder, with ``-p profile <profile>``. With
``--jobs N`` (default: one per usable CPU core, at most one per notebook) N notebooks run at
once, each pinned to its own share of the cores (``cores // N`` of them, at least one) with
``OMP_NUM_THREADS`` and friends set to that share, so that N kernels do not fight over the
same cores; torch's default thread count follows. Notebooks start longest first, by the times
of the last run of the same profile in ``<out>/report.json``; the results overview
(``99_*``), which reads every chapter's results, starts only when all of them have finished.
A table of wall times and peak memory is printed and written to ``<out>/report.json``
(rewritten atomically after each notebook, whatever the order they finish in). The exit
status is non-zero if any notebook failed; the others still run.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: notebooks that read the others' results: they run after all the others have finished
LAST = "99_"

_RUNNER = """
import json, os, resource, sys
src, dst, profile, timeout, cwd, cores = sys.argv[1:7]
if cores:  # before anything starts a thread; the kernel inherits it
    os.sched_setaffinity(0, [int(c) for c in cores.split(",")])
import papermill
papermill.execute_notebook(src, dst, parameters={"profile": profile}, cwd=cwd,
                           kernel_name="python3", execution_timeout=int(timeout),
                           progress_bar=False)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB -> MiB (Linux)
print("PEAK_MIB", json.dumps(peak))
"""
#: thread-count variables of the numerical libraries a kernel may load (torch reads OMP's)
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "NUMEXPR_NUM_THREADS")
_RECORD_LOCK = threading.Lock()


def run(notebook: Path, out_dir: Path, profile: str, timeout: int,
        cores: Sequence[int] | None = None) -> dict:
    """Execute one notebook in a child process; return its name, status, seconds and peak MiB
    (and, when it failed, the end of its error output as ``error``). With ``cores`` the child
    (and the kernel it starts) may run only on those CPU cores, with as many threads."""
    env = {**os.environ, **{var: str(len(cores)) for var in _THREAD_VARS}} if cores else None
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _RUNNER, str(notebook), str(out_dir / notebook.name), profile,
         str(timeout), str(notebook.parent), ",".join(map(str, cores or []))],
        capture_output=True, text=True, env=env,
    )
    seconds = time.perf_counter() - start
    peak = None
    for line in proc.stdout.splitlines():
        if line.startswith("PEAK_MIB"):
            peak = float(line.split()[1])
    row = {"notebook": notebook.stem, "ok": proc.returncode == 0, "seconds": round(seconds, 1),
           "peak_mib": None if peak is None else round(peak)}
    if cores:
        row["cores"] = len(cores)
    if proc.returncode != 0:
        row["error"] = "\n".join(proc.stderr.strip().splitlines()[-15:])
        print(f"--- {notebook.name} failed ---\n{row['error']}", file=sys.stderr)
    return row


def record(out_dir: Path, profile: str, row: dict, **summary) -> None:
    """Merge one notebook's row into ``<out_dir>/report.json`` (kept per profile), with any
    ``summary`` fields (e.g. ``jobs``, ``wall_seconds``) set at the top level. Safe to call
    from several threads; a reader never sees half a report."""
    path = out_dir / "report.json"
    with _RECORD_LOCK:
        report = json.loads(path.read_text()) if path.is_file() else {}
        if report.get("profile") != profile:
            report = {"profile": profile, "notebooks": []}
        rows = [r for r in report["notebooks"] if r["notebook"] != row["notebook"]] + [row]
        report["notebooks"] = sorted(rows, key=lambda r: r["notebook"])
        # the notebooks' own times added up: the elapsed time when they ran one at a time
        report["total_seconds"] = round(sum(r["seconds"] for r in report["notebooks"]), 1)
        report.update(summary)
        tmp = path.with_suffix(f".json.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(report, indent=2))
        tmp.replace(path)  # atomic


def longest_first(notebooks: Sequence[Path], out_dir: Path, profile: str) -> list[Path]:
    """``notebooks`` ordered by their time in the last report of ``profile`` (longest first;
    notebooks it does not list go first, in their given order)."""
    path = out_dir / "report.json"
    report = json.loads(path.read_text()) if path.is_file() else {}
    last = ({r["notebook"]: r["seconds"] for r in report.get("notebooks", [])}
            if report.get("profile") == profile else {})
    return sorted(notebooks, key=lambda nb: -last.get(nb.stem, float("inf")))


def core_shares(jobs: int, cores: Sequence[int]) -> list[list[int]]:
    """``jobs`` disjoint shares of ``cores``, ``len(cores) // jobs`` each (spare cores go to
    the first shares); with more jobs than cores, shares of one core are reused in turn.

    Examples:
        >>> core_shares(2, [0, 1, 2, 3, 4])
        [[0, 1, 2], [3, 4]]
        >>> core_shares(3, [0, 1])
        [[0], [1], [0]]
    """
    cores = sorted(cores)
    if jobs >= len(cores):
        return [[cores[i % len(cores)]] for i in range(jobs)]
    size, spare = divmod(len(cores), jobs)
    shares, start = [], 0
    for j in range(jobs):
        n = size + (j < spare)
        shares.append(cores[start:start + n])
        start += n
    return shares


def execute_all(notebooks: Sequence[Path], jobs: int, runner: Callable[[Path, list[int]], dict],
                on_done: Callable[[dict], None], cores: Sequence[int] | None = None
                ) -> list[dict]:
    """Run ``runner(notebook, cores)`` for every notebook, ``jobs`` at a time, each job on its
    own share of ``cores`` (default: the cores this process may use); ``on_done(row)`` is
    called as each one finishes. Returns the rows in the notebooks' order."""
    shares: queue.Queue[list[int]] = queue.Queue()
    for share in core_shares(jobs, cores or sorted(os.sched_getaffinity(0))):
        shares.put(share)

    def one(nb: Path) -> dict:
        share = shares.get()
        try:
            row = runner(nb, share)
        finally:
            shares.put(share)
        on_done(row)
        return row

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(one, notebooks))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--profile", default="book", choices=["smoke", "book", "paper"])
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "executed")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    parser.add_argument("--jobs", type=int, default=None,
                        help="notebooks run at once (default: one per usable CPU core, at most "
                             "one per notebook)")
    args = parser.parse_args(argv)
    if args.jobs is not None and args.jobs < 1:
        parser.error(f"--jobs must be a whole number ≥ 1, got {args.jobs}")
    notebooks = [nb.resolve() for nb in args.notebooks] or sorted(
        (ROOT / "notebooks").glob("*.ipynb"))
    jobs = min(args.jobs or len(os.sched_getaffinity(0)), len(notebooks))
    args.out.mkdir(parents=True, exist_ok=True)
    order = longest_first(notebooks, args.out, args.profile)
    stages = [[nb for nb in order if not nb.name.startswith(LAST)],
              [nb for nb in order if nb.name.startswith(LAST)]]
    print(f"running {len(order)} notebooks ({args.profile}), {jobs} at a time", flush=True)
    start = time.perf_counter()

    def runner(nb: Path, cores: list[int]) -> dict:
        print(f"started {nb.name} on cores {cores}", flush=True)
        began = round(time.perf_counter() - start, 1)
        return {**run(nb, args.out, args.profile, args.timeout, cores), "started_s": began}

    def done(r: dict) -> None:
        record(args.out, args.profile, r, jobs=jobs,
               wall_seconds=round(time.perf_counter() - start, 1))
        print(f"  {r['notebook']}: {'ok' if r['ok'] else 'FAILED'} in {r['seconds']} s, "
              f"peak {r['peak_mib']} MiB", flush=True)

    rows = []
    for stage in filter(None, stages):
        rows += execute_all(stage, min(jobs, len(stage)), runner, done)
    rows.sort(key=lambda r: r["notebook"])
    print(f"\n{'notebook':<28}{'status':>8}{'seconds':>10}{'peak MiB':>10}")
    for r in rows:
        print(f"{r['notebook']:<28}{'ok' if r['ok'] else 'FAILED':>8}{r['seconds']:>10}"
              f"{r['peak_mib'] or '-':>10}")
    print(f"{'total (one at a time)':<28}{'':>8}{round(sum(r['seconds'] for r in rows), 1):>10}")
    print(f"{'elapsed':<28}{'':>8}{round(time.perf_counter() - start, 1):>10}")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
