"""Execute the book's notebooks with papermill and report each one's run time and peak memory.

    python book/execute.py --profile book --out _build/executed [notebooks/00_*.ipynb ...]

Each notebook runs in its own process (so the peak resident memory of its kernel can be read
from ``getrusage``), in the ``notebooks/`` folder, with ``-p profile <profile>``. A table of
wall times and peak memory is printed and written to ``<out>/report.json``. The exit status is
non-zero if any notebook failed; the others still run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_RUNNER = """
import json, resource, sys, papermill
src, dst, profile, timeout = sys.argv[1:5]
papermill.execute_notebook(src, dst, parameters={"profile": profile}, cwd=sys.argv[5],
                           kernel_name="python3", execution_timeout=int(timeout),
                           progress_bar=False)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB -> MiB (Linux)
print("PEAK_MIB", json.dumps(peak))
"""


def run(notebook: Path, out_dir: Path, profile: str, timeout: int) -> dict:
    """Execute one notebook in a child process; return its name, status, seconds and peak MiB
    (and, when it failed, the end of its error output as ``error``)."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _RUNNER, str(notebook), str(out_dir / notebook.name), profile,
         str(timeout), str(notebook.parent)],
        capture_output=True, text=True,
    )
    seconds = time.perf_counter() - start
    peak = None
    for line in proc.stdout.splitlines():
        if line.startswith("PEAK_MIB"):
            peak = float(line.split()[1])
    row = {"notebook": notebook.stem, "ok": proc.returncode == 0, "seconds": round(seconds, 1),
           "peak_mib": None if peak is None else round(peak)}
    if proc.returncode != 0:
        row["error"] = "\n".join(proc.stderr.strip().splitlines()[-15:])
        print(f"--- {notebook.name} failed ---\n{row['error']}", file=sys.stderr)
    return row


def record(out_dir: Path, profile: str, row: dict) -> None:
    """Merge one notebook's row into ``<out_dir>/report.json`` (kept per profile)."""
    path = out_dir / "report.json"
    report = json.loads(path.read_text()) if path.is_file() else {}
    if report.get("profile") != profile:
        report = {"profile": profile, "notebooks": []}
    rows = [r for r in report["notebooks"] if r["notebook"] != row["notebook"]] + [row]
    report["notebooks"] = sorted(rows, key=lambda r: r["notebook"])
    report["total_seconds"] = round(sum(r["seconds"] for r in report["notebooks"]), 1)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2))
    tmp.replace(path)  # atomic: a reader never sees half a report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--profile", default="book", choices=["smoke", "book", "paper"])
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "executed")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    args = parser.parse_args()
    notebooks = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for nb in notebooks:
        print(f"running {nb.name} ({args.profile}) ...", flush=True)
        rows.append(run(nb.resolve(), args.out, args.profile, args.timeout))
        r = rows[-1]
        record(args.out, args.profile, r)
        print(f"  {'ok' if r['ok'] else 'FAILED'} in {r['seconds']} s, peak {r['peak_mib']} MiB",
              flush=True)
    total = sum(r["seconds"] for r in rows)
    print(f"\n{'notebook':<28}{'status':>8}{'seconds':>10}{'peak MiB':>10}")
    for r in rows:
        print(f"{r['notebook']:<28}{'ok' if r['ok'] else 'FAILED':>8}{r['seconds']:>10}"
              f"{r['peak_mib'] or '-':>10}")
    print(f"{'total':<28}{'':>8}{round(total, 1):>10}")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
