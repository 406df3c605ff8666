"""Write the book's Performance page from the benchmarks' JSON.

Reads ``results/benchmarks/*.json`` (written by ``make bench``; committed, so the page builds
without re-running them) and writes ``book/performance.md`` with its figures in
``book/figures/``. A benchmark whose JSON is missing is listed as not measured.

    python benchmarks/report.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results" / "benchmarks"
BOOK = ROOT / "book"
FIGURES = BOOK / "figures"


def load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def machine_line(record: dict) -> str:
    m = record.get("machine", {})
    if "cpu" not in m:
        return f"{m.get('cpus', '?')} CPUs, {m.get('platform', '?')}"
    load_avg = ", ".join(f"{x:.1f}" for x in m.get("load_average", []))
    return (f"{m['cpu']}, {m['cores']} cores usable, load average {load_avg} (shared machine), "
            f"Python {m['python']}, numpy {m['numpy']}, torch {m.get('torch', '—')}")


def save_loglog(fig, ax, xlabel: str, name: str) -> None:
    """Label, grid and save a log-log figure of the page into ``book/figures/name``."""
    ax.set_xlabel(xlabel)
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(FIGURES / name, dpi=100)
    plt.close(fig)


def density_section(d: dict) -> list[str]:
    sims = list(d["rows"][0]["seconds"])
    fig, ax = plt.subplots(figsize=(6, 4))
    for k in sims:
        pts = [(r["atoms"], r["seconds"][k]) for r in d["rows"] if k in r["seconds"]]
        ax.loglog(*zip(*pts, strict=True), "o-" if k != "gemmi" else "k--", label=k)
    ax.set_ylabel("seconds per map (median)")
    save_loglog(fig, ax, "atoms", "performance_density.png")
    ours = [k for k in sims if k != "gemmi"]
    lines = [
        "## Structure → map: the simulators against gemmi",
        "",
        f"Whole user path (gemmi structure in, boxed `Volume` out) at {d['resolution_A']:g} Å, "
        f"grid step {d['grid_step']}, median of {d['repeats']} interleaved runs; the peer is "
        f"{d['peer']} on the same grid spacing in the same process. Ratios below 1 mean "
        "cryolab is faster.",
        "",
        "| atoms | `atoms_of` s | gemmi s | " + " | ".join(f"{k} / gemmi" for k in ours) + " |",
        "|---:|---:|---:|" + "---:|" * len(ours),
    ]
    for r in d["rows"]:
        g = f"{r['seconds']['gemmi']:.3f}" if "gemmi" in r["seconds"] else "—"
        cells = [f"{r['over_gemmi'][k]:.2f}" if k in r["over_gemmi"]
                 else (f"({r['seconds'][k]:.2f} s)" if k in r["seconds"] else "—") for k in ours]
        lines.append(f"| {r['atoms']:,} | {r['atoms_of_s']:.3f} | {g} | " + " | ".join(cells)
                     + " |")
    big = [r for r in d["rows"] if "peak_memory_gib" in r]
    err = d.get("fft_vs_direct_10k")
    lines += [
        "",
        ":::{figure} figures/performance_density.png",
        ":alt: Seconds per map against number of atoms, log-log, for each simulator and gemmi",
        "",
        "Seconds per map against atoms (log-log), structure conversion and boxing included; "
        "slope 1 is linear in the atoms. At 1M atoms only molmap (both summations), pdb2mrc "
        "and gemmi ran.",
        ":::",
        "",
    ]
    if big:
        peaks = ", ".join(f"`{k}` {v:.2f} GiB" for k, v in big[0]["peak_memory_gib"].items())
        lines += [f"Peak memory at {big[0]['atoms']:,} atoms, above the structure: {peaks}.",
                  ""]
    if err:
        lines.append(f"Spreading + filter (`molmap_fft`) against the exact window sums at 10k "
                     f"atoms: max |Δ| {err['max_abs_over_peak']:.1%} of the peak, rms "
                     f"{err['rms_over_peak']:.2%}, correlation {err['correlation']:.4f} — too "
                     "coarse at R/3 sampling to replace `molmap`'s default.")
    lines += ["", f"Machine: {machine_line(d)}.", "", f"Reproduce: `{d['command']}`", ""]
    return lines


def inference_section(d: dict) -> list[str]:
    lines = ["## Networks: voxels per second", "",
             f"torch on {d['threads']} CPU threads, {d['caveat']}; goal: {d['goal']}.", "",
             "| task | voxels | seconds | voxels / s |", "|---|---:|---:|---:|"]
    lines += [f"| {r['task']} | {r['voxels']:,} | {r['seconds']:.2f} | {r['voxels_per_s']:,.0f} |"
              for r in d["rows"]]
    quality = d.get("whole_vs_tiles", [])
    if quality:
        lines += ["", "The shipped generator's map over 32³ tiles (20³ cores kept) and over "
                  "the whole map at once, "
                  "scored against the curated experimental map as in chapter 01 (both maps were "
                  "in its training set: this compares the two inference paths, not how well "
                  "it generalises):", "",
                  "| map | inference | PCC | SSIM | ChimeraX CC | CC about mean | FSC 0.5 Å |",
                  "|---|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {q['map']} | {q['mode']} | {q['pcc']:.3f} | {q['ssim']:.3f} "
                  f"| {q['cc_chimerax']:.3f} | {q['cc_about_mean']:.3f} | {q['fsc_05']:.2f} |"
                  for q in quality]
    lines += ["", f"Machine: {machine_line(d)}.", "", f"Reproduce: `{d['command']}`", ""]
    return lines


def tomo_section(d: dict) -> list[str]:
    bp, pipe = d["backprojection"], d["pipeline"]
    size = f"{bp['slices']} slices of {bp['n']}², {bp['angles']} tilts"
    lines = [
        "## Tomograms", "",
        "| benchmark | ours s | peer | peer s | peer / ours |", "|---|---:|---|---:|---:|",
        f"| back-projection, {size} | {bp['ours_s']:.2f} | `skimage.transform.iradon` "
        f"| {bp['skimage_s']:.2f} | {bp['speedup']:.1f} |",
    ]
    if "astra_s" in bp:
        lines.append(f"| back-projection, {size} | {bp['ours_s']:.2f} | astra-toolbox CPU FBP "
                     f"| {bp['astra_s']:.2f} | {bp['astra_over_ours']:.2f} |")
    lines.append(f"| whole simulation {'×'.join(map(str, pipe['shape_xyz']))} voxels, "
                 f"{pipe['n_tilts']} tilts | {pipe['total_s']:.1f} | CTS tutorial (< 180 s) "
                 "| — | — |")
    lines += tomo_memory_lines(d)
    if "astra_skipped" in bp:
        lines += ["", f"Skipped: {bp['astra_skipped']}"]
    lines += ["", f"Machine: {machine_line(d)}.", "",
              "Reproduce: `CRYOLAB_ASTRA_PYTHON=… python benchmarks/bench_tomo.py"
              + (" --quick" if d["quick"] else "") + "` (astra-toolbox in its own environment; "
              "see the benchmark's docstring).", ""]
    return lines


def tomo_memory_lines(d: dict) -> list[str]:
    """Time and peak memory of ``simulate-tomo`` against size: a table and a log-log figure,
    the memory both for the whole process and above the imports."""
    rows = d.get("memory")
    if not rows:
        return []
    target = d["memory_target_bytes_per_voxel"]
    fig, ax = plt.subplots(figsize=(6, 4))
    voxels = [r["voxels"] for r in rows]
    ax.loglog(voxels, [r["seconds"] for r in rows], "o-", label="seconds")
    ax.loglog(voxels, [r["peak_gib"] for r in rows], "s-",
              label="peak memory, whole process (GiB)")
    ax.loglog(voxels, [r["peak_gib"] - r["baseline_gib"] for r in rows], "^:",
              label="peak memory above the imports (GiB)")
    ax.loglog(voxels, [target * v / 2**30 for v in voxels], "k--",
              label=f"{target} bytes per voxel")
    save_loglog(fig, ax, "voxels", "performance_tomo_memory.png")
    lines = ["", "`simulate-tomo` (the streamed run that writes a folder: specimen, tilt "
             "series, tomogram, prior, atlas, masks), 61 tilts at 10 Å, each size in a fresh "
             "process; bytes per voxel of the whole process's peak resident memory, and of the "
             f"peak less the memory after the imports (goal: ≤ {target} for the whole process "
             "at 800×800×80):", "",
             "| voxels (x×y×z) | seconds | peak GiB (whole process) | bytes per voxel (whole "
             "process) | bytes per voxel (above the imports) |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {'×'.join(map(str, r['shape_xyz']))} | {r['seconds']:.1f} | "
              f"{r['peak_gib']:.2f} | {r['bytes_per_voxel_whole_process']:.1f} | "
              f"{r['bytes_per_voxel_above_imports']:.1f} |" for r in rows]
    if "memory_machine" in d:
        lines += ["", f"Measured apart (`--memory-only`) on: "
                  f"{machine_line({'machine': d['memory_machine']})}."]
    lines += ["", f"Before (#23): {d['memory_before']}.", "",
              ":::{figure} figures/performance_tomo_memory.png",
              ":alt: Seconds and peak memory (whole process and above the imports) of "
              f"simulate-tomo against voxels, log-log, with the {target}-bytes-per-voxel line",
              "",
              "Seconds and peak memory of `simulate-tomo` against the number of voxels "
              f"(log-log), for the whole process and above the imports; the dashed line is "
              f"{target} bytes per voxel.",
              ":::", ""]
    return lines


def topaz_section(d: dict) -> list[str]:
    shape = "×".join(map(str, d["shape_zyx"][::-1]))
    lines = ["## Tomogram denoising against Topaz-Denoise", "",
             f"Denoising a simulated {shape}-voxel tomogram (x × y × z, 10 Å voxels) on "
             f"{d['machine']['threads']} CPU thread(s): the shipped denoiser as `cryolab "
             "denoise` runs it, and Topaz-Denoise's two shipped 3D models in their own "
             "environment, as chapter 05 runs them (one pass over the whole tomogram; the "
             "time of the whole `topaz denoise3d` process, start-up included). Quality: "
             "chapter 05.", "",
             "| method | seconds | megavoxels/s |", "|---|---:|---:|"]
    for method, seconds in d["seconds"].items():
        lines.append(f"| {method} | {seconds:.1f} | {d['megavoxels_per_s'][method]:.3f} |"
                     if seconds else f"| {method} | skipped | — |")
    if d.get("topaz_skipped"):
        lines += ["", f"Skipped: {d['topaz_skipped']}"]
    lines += ["", f"Machine: {machine_line(d)}.", "",
              "Reproduce: `CRYOLAB_TOPAZ_PYTHON=… python benchmarks/bench_topaz.py"
              + (" --quick" if d["quick"] else "") + "` (`make topaz` makes the environment).",
              ""]
    return lines


def afm_section(d: dict) -> list[str]:
    lines = ["## AFM views: tip dilation against `scipy.ndimage.grey_dilation`", "",
             "| structure | atoms | tip | ours images/s | scipy images/s | speed-up |",
             "|---|---:|---|---:|---:|---:|"]
    lines += [f"| {r['structure']} | {r['atoms']} | {r['tip']} | {r['ours_images_per_s']:.1f} "
              f"| {r['scipy_images_per_s']:.1f} | {r['speedup']:.2f} |" for r in d["rows"]]
    lines += ["", "Reproduce: `python benchmarks/bench_afm.py"
              + (" --quick" if d["quick"] else "") + "`", ""]
    return lines


def main() -> int:
    FIGURES.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Performance", "",
        "How fast cryolab's simulators and networks run against the C/C++ and Python tools "
        "that do the same job, measured by `make bench` (the benchmarks in `benchmarks/`) and "
        "written here by `python benchmarks/report.py` from the JSON they leave in "
        "`results/benchmarks/`. Every ratio compares runs in the same process, interleaved, "
        "so that a shared machine slows both sides alike; the seconds themselves are noisy.",
        "",
    ]
    sections = {"density": density_section, "inference": inference_section,
                "tomo": tomo_section, "topaz": topaz_section, "afm": afm_section}
    missing = []
    for name, section in sections.items():
        record = load(name)
        if record is None:
            missing.append(name)
        else:
            lines += section(record)
    if missing:
        lines += ["## Not measured yet", "",
                  "No JSON yet for: " + ", ".join(f"`bench_{m}.py`" for m in missing)
                  + " (run `make bench`).", ""]
    (BOOK / "performance.md").write_text("\n".join(lines))
    print(f"wrote {BOOK / 'performance.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
