"""The machine a benchmark ran on, for its JSON (and the book's Performance page)."""

from __future__ import annotations

import os
import platform


def machine() -> dict:
    """CPU model, cores this process may use, load average, Python, numpy and torch builds."""
    import numpy as np

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    try:
        import torch

        torch_info = {"torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                      "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available()
                      else None}
    except ImportError:
        torch_info = {}
    return {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "cpu_count": os.cpu_count(),
            "load_average": os.getloadavg(), "platform": platform.platform(),
            "python": platform.python_version(), "numpy": np.__version__, **torch_info}


def write_result(name: str, record: dict) -> None:
    """Write ``results/benchmarks/<name>.json`` (with the machine) and say where."""
    import json
    from pathlib import Path

    out = Path(__file__).resolve().parents[1] / "results" / "benchmarks" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**record, "machine": machine()}, indent=2))
    print(f"wrote {out}")
