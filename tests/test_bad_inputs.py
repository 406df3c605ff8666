"""Every command, fed bad inputs and hit by faults, through :func:`cryolab.cli.main`.

Each case must end with a non-zero exit status, exactly one line on stderr that names the file
or option at fault, no traceback, and nothing written: the listing of the whole test folder
(inputs, the working directory, output folders) is the same before and after. Add cases here
whenever a command is added.
"""

from __future__ import annotations

import argparse
import errno
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import gemmi
import numpy as np
import pytest
import torch

from cryolab import outputs
from cryolab.cli import build_parser, main
from cryolab.io import Volume, write_map

# --------------------------------------------------------------------------------- inputs


ALANINE = [("N", "N", (10.0, 10.0, 10.0)), ("CA", "C", (11.4, 10.3, 10.0)),
           ("C", "C", (12.1, 11.5, 10.4)), ("O", "O", (13.2, 11.6, 11.0)),
           ("CB", "C", (11.9, 9.0, 9.4))]


def write_alanine(path: Path, shift: tuple[float, float, float] = (0.0, 0.0, 0.0)
                  ) -> np.ndarray:
    """Write one alanine (N, CA, C, O, CB) near (10, 10, 10) Å + ``shift`` as a PDB file;
    return its atom positions (N, 3), x, y, z in Å. Shared by the command-line tests."""
    st = gemmi.Structure()
    model, chain, res = gemmi.Model("1"), gemmi.Chain("A"), gemmi.Residue()
    res.name, res.seqid = "ALA", gemmi.SeqId(1, " ")
    xyz = np.array([pos for _, _, pos in ALANINE]) + shift
    for (name, element, _), pos in zip(ALANINE, xyz, strict=True):
        atom = gemmi.Atom()
        atom.name, atom.element, atom.occ = name, gemmi.Element(element), 1.0
        atom.pos = gemmi.Position(*pos)
        res.add_atom(atom)
    chain.add_residue(res)
    model.add_chain(chain)
    st.add_model(model)
    st.setup_entities()
    st.write_pdb(str(path))
    return xyz


class Evil:
    """Unpickling this creates the file ``target`` (what a crafted checkpoint could do)."""

    def __init__(self, target: Path) -> None:
        self.target = str(target)

    def __reduce__(self):  # noqa: ANN204
        return (open, (self.target, "w"))


def _checkpoint(path: Path, model: torch.nn.Module) -> None:
    from cryolab.train import Trainer, supervised_step

    Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1),
            supervised_step(torch.nn.functional.mse_loss), device="cpu").save(path)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """Good and bad input files, made once (never written to by the cases)."""
    from cryolab.nn.unet import UNet
    from cryolab.nn.unet3d import UNet3D

    d = tmp_path_factory.mktemp("inputs")
    write_alanine(d / "ala.pdb")
    (d / "bad.pdb").write_text("this is not a structure\n")
    (d / "empty.cif").write_text("")
    pdb_text = (d / "ala.pdb").read_text().splitlines()
    atom_line = next(line for line in pdb_text if line.startswith(("ATOM", "HETATM")))
    (d / "nan.pdb").write_text(atom_line[:30] + f"{'nan':>8}" + atom_line[38:] + "\nEND\n")
    rng = np.random.default_rng(0)
    grid = Volume(rng.random((16, 16, 16), dtype=np.float32), 1.0, (4.0, 4.0, 4.0))
    write_map(d / "map.mrc", grid)
    write_map(d / "far.mrc", Volume(grid.data, 1.0, (500.0, 500.0, 500.0)))
    write_map(d / "coarse.mrc", Volume(grid.data, 500.0, 0.0))
    import mrcfile

    with mrcfile.new(d / "flat.mrc") as mrc:
        mrc.set_data(np.zeros((16, 16), np.float32))
    raw = (d / "map.mrc").read_bytes()
    (d / "trunc.mrc").write_bytes(raw[: len(raw) // 2])
    (d / "negdim.mrc").write_bytes(raw[:8] + (-16).to_bytes(4, "little", signed=True)
                                   + raw[12:])
    (d / "text.mrc").write_text("not a map\n")
    nan = grid.data.copy()
    nan[0, 0, 0] = np.nan
    with mrcfile.new(d / "nanmap.mrc") as mrc:
        mrc.set_data(nan)
        mrc.voxel_size = 1.0
    torch.manual_seed(0)
    _checkpoint(d / "denoise.pt", UNet(1, 1, dims=3, base=2, depth=1))
    _checkpoint(d / "segment.pt", UNet(1, 3, dims=3, base=2, depth=1))
    _checkpoint(d / "unet3d.pt", UNet3D(depth=1, base=2))
    torch.save({"architecture": {"model": Evil(d / "PWNED")}}, d / "evil.pt")
    (d / "garbage.pt").write_bytes(b"\x00\x01 definitely not a checkpoint")
    (d / "config.yml").write_text(
        "specimen: {size: [200, 200, 100], pixel_size: 10}\n"
        "microscope: {min_angle: -30, max_angle: 30, step: 30}\n")
    (d / "empty.yml").write_text("")
    (d / "invalid.yml").write_text("specimen: [unclosed\n")
    (d / "nan.yml").write_text("microscope: {dose: .nan}\n")
    (d / "string.yml").write_text("specimen: {pixel_size: ten}\n")
    (d / "size_string.yml").write_text("specimen: {size: [200, big, 100]}\n")
    (d / "section.yml").write_text("detector: {}\n")
    (d / "key.yml").write_text("microscope: {doze: 100}\n")
    (d / "layer.yml").write_text("specimen: {layers: [{particles: [ribosome], density: 2}]}\n")
    (d / "seed.yml").write_text("seed: -1\n")
    (d / "huge.yml").write_text("specimen: {size: [1000000, 1000000, 10000], pixel_size: 1}\n")
    (d / "gpu.yml").write_text("use_gpu: perhaps\n")
    (d / "a_file").write_text("a file, not a folder\n")
    return d


# ---------------------------------------------------------------------------------- cases


@dataclass
class Case:
    """``argv`` with ``{in}`` for the inputs folder; ``expect`` must appear in the one line."""

    id: str
    argv: list[str]
    expect: str
    setup: str | None = None  # a name in SETUPS run in the work folder first
    fault: str | None = None  # a name in FAULTS patched in while the command runs
    status: int | None = None  # a specific exit status (default: any non-zero)
    extra: dict = field(default_factory=dict)


def c(id: str, argv: str, expect: str, **kw) -> Case:  # noqa: A002
    return Case(id, argv.split(), expect, **kw)


SM = "simulate-map {in}/ala.pdb --resolution 4"
SH = "sharpen {in}/map.mrc --out o.mrc"
DN = "denoise {in}/map.mrc --checkpoint {in}/denoise.pt --out o.mrc"
SG = "segment {in}/map.mrc --checkpoint {in}/segment.pt --out o.mrc"
ER = "emringer {in}/ala.pdb {in}/map.mrc"
AF = "afm {in}/ala.pdb --views 2 --image-size 8 --out views"
ST = "simulate-tomo {in}/config.yml --quiet --out tomo"

CASES = [
    # ---- simulate-map
    c("map-missing-structure", "simulate-map {in}/nope.pdb --resolution 4 --out o.mrc",
      "nope.pdb"),
    c("map-garbage-structure", "simulate-map {in}/bad.pdb --resolution 4 --out o.mrc",
      "bad.pdb"),
    c("map-empty-mmcif", "simulate-map {in}/empty.cif --resolution 4 --out o.mrc",
      "empty.cif"),
    c("map-nan-coordinate", "simulate-map {in}/nan.pdb --resolution 4 --out o.mrc",
      "nan.pdb"),
    c("map-resolution-zero", "simulate-map {in}/ala.pdb --resolution 0 --out o.mrc",
      "--resolution"),
    c("map-resolution-nan", "simulate-map {in}/ala.pdb --resolution nan --out o.mrc",
      "--resolution"),
    c("map-resolution-string", "simulate-map {in}/ala.pdb --resolution four --out o.mrc",
      "--resolution"),
    c("map-resolution-absurd", "simulate-map {in}/ala.pdb --resolution 1e6 --out o.mrc",
      "--resolution"),
    c("map-no-resolution", "simulate-map {in}/ala.pdb --out o.mrc", "--resolution"),
    c("map-voxel-negative", f"{SM} --voxel-size -1 --out o.mrc", "--voxel-size"),
    c("map-voxel-too-small-for-memory", f"{SM} --voxel-size 0.0001 --out o.mrc", "GB"),
    c("map-unknown-method", f"{SM} --method magic --out o.mrc", "--method"),
    c("map-unknown-option", f"{SM} --bogus 1 --out o.mrc", "--bogus"),
    c("map-missing-out", SM, "--out"),
    c("map-bad-suffix", f"{SM} --out o.txt", "--out"),
    c("map-grid-no-overlap", f"{SM} --on-grid {{in}}/far.mrc --out o.mrc", "--on-grid"),
    c("map-grid-2d-image", f"{SM} --on-grid {{in}}/flat.mrc --out o.mrc", "flat.mrc"),
    c("map-grid-negative-dimension", f"{SM} --on-grid {{in}}/negdim.mrc --out o.mrc",
      "negdim.mrc"),
    c("map-grid-truncated", f"{SM} --on-grid {{in}}/trunc.mrc --out o.mrc", "trunc.mrc"),
    c("map-grid-nan", f"{SM} --on-grid {{in}}/nanmap.mrc --out o.mrc", "nanmap.mrc"),
    c("map-out-exists", f"{SM} --out old.mrc", "--overwrite", setup="old_file"),
    c("map-out-is-folder", f"{SM} --out a_folder", "a_folder", setup="folder"),
    c("map-out-parent-is-file", f"{SM} --out {{in}}/a_file/o.mrc", "a_file"),
    c("map-out-is-input", f"{SM} --on-grid {{in}}/map.mrc --out {{in}}/map.mrc --overwrite",
      "input"),
    c("map-out-no-permission", f"{SM} --out locked/o.mrc", "permission", setup="locked"),
    c("map-out-read-only-fs", f"{SM} --out o.mrc", "read-only", fault="read_only_fs"),
    c("map-gan-malicious-checkpoint",
      "simulate-map {in}/ala.pdb --method gan --checkpoint {in}/evil.pt --out o.mrc",
      "evil.pt"),
    c("map-gan-garbage-checkpoint",
      "simulate-map {in}/ala.pdb --method gan --checkpoint {in}/garbage.pt --out o.mrc",
      "garbage.pt"),
    c("map-gan-wrong-checkpoint",
      "simulate-map {in}/ala.pdb --method gan --checkpoint {in}/unet3d.pt --out o.mrc",
      "unet3d.pt"),
    c("map-device-unknown", f"{SM} --device banana --out o.mrc", "--device"),
    c("map-ctrl-c-while-writing", f"{SM} --out o.mrc", "interrupted",
      fault="interrupt_write", status=130),
    c("map-disk-full", f"{SM} --out o.mrc", "No space left", fault="disk_full"),
    # ---- sharpen
    c("sharpen-missing-map", "sharpen {in}/nope.mrc --out o.mrc", "nope.mrc"),
    c("sharpen-text-as-map", "sharpen {in}/text.mrc --method bfactor --resolution 4 "
      "--out o.mrc", "text.mrc"),
    c("sharpen-2d-image", "sharpen {in}/flat.mrc --method bfactor --resolution 4 --out o.mrc",
      "flat.mrc"),
    c("sharpen-bfactor-no-resolution", f"{SH} --method bfactor", "--resolution"),
    c("sharpen-beyond-nyquist", f"{SH} --method bfactor --resolution 1", "Nyquist"),
    c("sharpen-fit-low-below-resolution", f"{SH} --method bfactor --resolution 4 "
      "--fit-low 3", "--fit-low"),
    c("sharpen-unknown-method", f"{SH} --method magic", "--method"),
    c("sharpen-unet3d-no-checkpoint", f"{SH} --method unet3d", "--checkpoint"),
    c("sharpen-missing-checkpoint", f"{SH} --checkpoint {{in}}/nope.pt", "nope.pt"),
    c("sharpen-wrong-architecture", f"{SH} --method vae --checkpoint {{in}}/unet3d.pt",
      "unet3d.pt"),
    c("sharpen-malicious-checkpoint", f"{SH} --checkpoint {{in}}/evil.pt", "evil.pt"),
    c("sharpen-1A-grid-too-large", "sharpen {in}/coarse.mrc --checkpoint {in}/unet3d.pt "
      "--out o.mrc", "GB"),
    c("sharpen-stride-zero", f"{SH} --checkpoint {{in}}/unet3d.pt --stride 0", "--stride"),
    c("sharpen-patch-zero", f"{SH} --checkpoint {{in}}/unet3d.pt --patch 0", "--patch"),
    c("sharpen-out-is-input", "sharpen {in}/map.mrc --method bfactor --resolution 4 "
      "--out {in}/map.mrc --overwrite", "input"),
    c("sharpen-out-exists", "sharpen {in}/map.mrc --method bfactor --resolution 4 "
      "--out old.mrc", "--overwrite", setup="old_file"),
    # ---- denoise
    c("denoise-missing-tomogram", "denoise {in}/nope.mrc --checkpoint {in}/denoise.pt "
      "--out o.mrc", "nope.mrc"),
    c("denoise-batch-zero", f"{DN} --batch 0", "--batch"),
    c("denoise-batch-string", f"{DN} --batch two", "--batch"),
    c("denoise-stride-zero", f"{DN} --stride 0", "--stride"),
    c("denoise-patch-negative", f"{DN} --patch -4", "--patch"),
    c("denoise-segmentation-checkpoint", "denoise {in}/map.mrc --checkpoint "
      "{in}/segment.pt --out o.mrc", "segment.pt"),
    c("denoise-garbage-checkpoint", "denoise {in}/map.mrc --checkpoint {in}/garbage.pt "
      "--out o.mrc", "garbage.pt"),
    c("denoise-out-parent-is-file", "denoise {in}/map.mrc --checkpoint {in}/denoise.pt "
      "--out {in}/a_file/o.mrc", "a_file"),
    c("denoise-ctrl-c", DN, "interrupted", fault="interrupt_network", status=130),
    # ---- segment
    c("segment-denoising-checkpoint", "segment {in}/map.mrc --checkpoint {in}/denoise.pt "
      "--out o.mrc", "denoise.pt"),
    c("segment-malicious-checkpoint", "segment {in}/map.mrc --checkpoint {in}/evil.pt "
      "--out o.mrc", "evil.pt"),
    c("segment-nan-map", "segment {in}/nanmap.mrc --checkpoint {in}/segment.pt --out o.mrc",
      "nanmap.mrc"),
    c("segment-2d-image", "segment {in}/flat.mrc --checkpoint {in}/segment.pt --out o.mrc",
      "flat.mrc"),
    c("segment-out-is-input", "segment {in}/map.mrc --checkpoint {in}/segment.pt "
      "--out {in}/map.mrc --overwrite", "input"),
    c("segment-out-is-folder", f"{SG[:-5]} a_folder", "a_folder", setup="folder"),
    # ---- emringer
    c("emringer-missing-model", "emringer {in}/nope.pdb {in}/map.mrc --csv o.csv",
      "nope.pdb"),
    c("emringer-missing-map", "emringer {in}/ala.pdb {in}/nope.mrc --csv o.csv", "nope.mrc"),
    c("emringer-empty-mmcif", "emringer {in}/empty.cif {in}/map.mrc --csv o.csv",
      "empty.cif"),
    c("emringer-truncated-map", "emringer {in}/ala.pdb {in}/trunc.mrc --csv o.csv",
      "trunc.mrc"),
    c("emringer-csv-exists", f"{ER} --csv old.csv", "--overwrite", setup="old_csv"),
    c("emringer-csv-is-folder", f"{ER} --csv a_folder", "a_folder", setup="folder"),
    c("emringer-csv-is-input", f"{ER} --csv {{in}}/ala.pdb --overwrite", "input"),
    # ---- afm
    c("afm-views-zero", "afm {in}/ala.pdb --views 0 --out views", "--views"),
    c("afm-image-size-tiny", "afm {in}/ala.pdb --image-size 2 --out views", "--image-size"),
    c("afm-noise-nan", f"{AF} --noise nan", "--noise"),
    c("afm-tip-angle-90", f"{AF} --tip-angle 90", "--tip-angle"),
    c("afm-pixel-size-zero", f"{AF} --pixel-size 0", "--pixel-size"),
    c("afm-seed-negative", f"{AF} --seed -1", "--seed"),
    c("afm-too-many-views", "afm {in}/ala.pdb --views 100000000 --image-size 4096 "
      "--out views", "GB"),
    c("afm-unknown-structure", "afm no_such_thing.pdb --out views", "no_such_thing.pdb"),
    c("afm-empty-mmcif", "afm {in}/empty.cif --views 2 --image-size 8 --out views",
      "empty.cif"),
    c("afm-out-is-file", "afm {in}/ala.pdb --views 2 --image-size 8 --out {in}/a_file",
      "a_file"),
    c("afm-out-is-cwd", "afm {in}/ala.pdb --views 2 --image-size 8 --out . --overwrite",
      "working directory"),
    c("afm-out-foreign-folder", f"{AF} --overwrite", "did not write", setup="foreign_views"),
    c("afm-out-earlier-run", AF, "--overwrite", setup="earlier_views"),
    c("afm-ctrl-c-while-writing", AF, "interrupted", fault="interrupt_save", status=130),
    # ---- data
    c("data-max-resolution-nan", "data --max-resolution nan", "--max-resolution"),
    c("data-download-jobs-zero", "data download --all --jobs 0", "--jobs"),
    # ---- models
    c("models-unknown-name", "models no-such-model", "no-such-model"),
    # ---- afm-reconstruct
    c("afmrec-missing-views", "afm-reconstruct {in}/nope.npy --out o.mrc", "nope.npy"),
    c("afmrec-no-orientations", "afm-reconstruct {in}/map.mrc --out o.mrc", "orientations"),
    c("afmrec-views-not-npy", "afm-reconstruct {in}/map.mrc --orientations {in}/config.yml "
      "--out o.mrc", "map.mrc"),
    c("afmrec-out-is-input", "afm-reconstruct {in}/map.mrc --out {in}/map.mrc", "map.mrc"),
    # ---- simulate-tomo
    c("tomo-missing-config", "simulate-tomo {in}/nope.yml --out tomo", "nope.yml"),
    c("tomo-empty-config", "simulate-tomo {in}/empty.yml --out tomo", "empty.yml"),
    c("tomo-invalid-yaml", "simulate-tomo {in}/invalid.yml --out tomo", "invalid.yml"),
    c("tomo-nan-value", "simulate-tomo {in}/nan.yml --out tomo", "dose"),
    c("tomo-string-value", "simulate-tomo {in}/string.yml --out tomo", "pixel_size"),
    c("tomo-string-in-size", "simulate-tomo {in}/size_string.yml --out tomo", "size"),
    c("tomo-unknown-section", "simulate-tomo {in}/section.yml --out tomo", "detector"),
    c("tomo-unknown-key", "simulate-tomo {in}/key.yml --out tomo", "doze"),
    c("tomo-layer-density", "simulate-tomo {in}/layer.yml --out tomo", "density"),
    c("tomo-negative-seed", "simulate-tomo {in}/seed.yml --out tomo", "seed"),
    c("tomo-non-boolean", "simulate-tomo {in}/gpu.yml --out tomo", "use_gpu"),
    c("tomo-too-large-for-memory", "simulate-tomo {in}/huge.yml --out tomo", "GB"),
    c("tomo-seed-option-string", f"{ST} --seed abc", "--seed"),
    c("tomo-out-cwd-overwrite", "simulate-tomo {in}/config.yml --out . --overwrite",
      "working directory"),
    c("tomo-out-holds-input", "simulate-tomo {in}/config.yml --out {in} --overwrite",
      "input"),
    c("tomo-out-foreign-folder", f"{ST} --overwrite", "did not write", setup="foreign_tomo"),
    c("tomo-out-is-file", "simulate-tomo {in}/config.yml --out {in}/a_file", "a_file"),
    c("tomo-ctrl-c", ST, "interrupted", fault="interrupt_simulate", status=130),
    # ---- sets on Dask (simulate-tomo --n, afm and simulate-map with several structures)
    c("tomo-set-n-zero", f"{ST} --n 0", "--n"),
    c("tomo-set-workers-negative", f"{ST} --n 2 --workers -1", "--workers"),
    c("tomo-set-out-foreign-folder", f"{ST} --n 2 --workers 0", "did not write",
      setup="foreign_tomo"),
    c("tomo-set-out-is-file", "simulate-tomo {in}/config.yml --n 2 --out {in}/a_file",
      "a_file"),
    c("afm-set-out-is-file", "afm {in}/ala.pdb {in}/ala.pdb --views 2 --out {in}/a_file",
      "a_file"),
    c("map-set-workers-string", "simulate-map {in}/ala.pdb {in}/ala.pdb --resolution 4 "
      "--out maps --workers many", "--workers"),
    # ---- train
    c("train-unknown-chapter", "train 04 --profile smoke --out run", "choose one of 01"),
    c("train-unknown-profile", "train 01 --profile huge --out run", "huge"),
    c("train-epochs-zero", "train 01 --profile smoke --epochs 0 --out run", "--epochs"),
    # ---- to-ome-zarr
    c("zarr-missing-source", "to-ome-zarr {in}/nope.mrc --out o.zarr", "nope.mrc"),
    c("zarr-folder-without-tomogram", "to-ome-zarr {in} --out o.zarr", "tomogram.mrc"),
    c("zarr-bad-map", "to-ome-zarr {in}/text.mrc --out o.zarr", "text.mrc"),
    c("zarr-out-is-file", "to-ome-zarr {in}/map.mrc --out {in}/a_file", "a_file"),
    c("zarr-out-foreign-folder", "to-ome-zarr {in}/map.mrc --out views --overwrite",
      "did not write", setup="foreign_views"),
    c("zarr-levels-zero", "to-ome-zarr {in}/map.mrc --out o.zarr --levels 0", "--levels"),
    # ---- fetch, data
    c("fetch-unknown-name", "fetch maps/no_such_map.map.gz", "no_such_map"),
    c("fetch-no-name", "fetch", "names"),
    c("data-resolution-string", "data --max-resolution best", "--max-resolution"),
    c("unknown-command", "simulate-everything", "simulate-everything"),
]

if not torch.cuda.is_available():
    CASES += [
        c("map-device-cuda-missing", f"{SM} --method gan --checkpoint {{in}}/unet3d.pt "
          "--device cuda --out o.mrc", "--device"),
        c("sharpen-device-cuda-missing", f"{SH} --checkpoint {{in}}/unet3d.pt --device cuda",
          "--device"),
        c("denoise-device-cuda-missing", f"{DN} --device cuda", "--device"),
    ]


# ------------------------------------------------------------------ setups and faults


def _views(folder: Path, marked: bool) -> None:
    folder.mkdir()
    (folder / "view_000.png").write_bytes(b"an earlier image")
    if marked:
        (folder / outputs.MARKER).write_text("written by cryolab afm\n")


SETUPS = {
    "old_file": lambda: Path("old.mrc").write_bytes(b"an older map"),
    "old_csv": lambda: Path("old.csv").write_text("an,older,table\n"),
    "folder": lambda: Path("a_folder").mkdir(),
    "locked": lambda: (Path("locked").mkdir(), os.chmod("locked", 0o555)),
    "foreign_views": lambda: _views(Path("views"), marked=False),
    "earlier_views": lambda: _views(Path("views"), marked=True),
    "foreign_tomo": lambda: _views(Path("tomo"), marked=False),
}


def _no_write_permission(path, mode, *args, **kwargs):  # noqa: ANN001, ANN202
    """``os.access`` as a user without root's override sees it (tests may run as root)."""
    return not (mode & os.W_OK) or bool(os.stat(path).st_mode & 0o200)


def _interrupt(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
    raise KeyboardInterrupt


def _interrupting_new(name, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
    Path(name).write_bytes(b"half a map")
    raise KeyboardInterrupt


def _disk_full(name, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
    Path(name).write_bytes(b"half a map")
    raise OSError(errno.ENOSPC, "No space left on device", str(name))


def _interrupting_save(path, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
    Path(path).write_bytes(b"half an array")
    raise KeyboardInterrupt


def _read_only(monkeypatch) -> None:  # noqa: ANN001
    class Flags:
        f_flag = os.ST_RDONLY

    monkeypatch.setattr(outputs.os, "access", lambda *a, **k: False)
    monkeypatch.setattr(outputs.os, "statvfs", lambda path: Flags())


def _fault(name: str, monkeypatch) -> None:  # noqa: ANN001
    import importlib

    import cryolab.io
    import cryolab.nn.unet

    if name == "read_only_fs":
        _read_only(monkeypatch)
    elif name == "interrupt_write":  # the MRC writer of cryolab.io.write_map
        monkeypatch.setattr(cryolab.io, "_MapFile", _interrupting_new)
    elif name == "disk_full":
        monkeypatch.setattr(cryolab.io, "_MapFile", _disk_full)
    elif name == "interrupt_network":
        monkeypatch.setattr(cryolab.nn.unet, "denoise_volume", _interrupt)
    elif name == "interrupt_save":
        monkeypatch.setattr(np, "save", _interrupting_save)
    elif name == "interrupt_simulate":  # mid-run: the streamed run has written some files
        simulation = importlib.import_module("cryolab.tomo.simulate")
        monkeypatch.setattr(simulation, "acquire", _interrupt)
    else:
        raise KeyError(name)


# --------------------------------------------------------------------------------- runner


def _listing(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` with its size and mode (so nothing written goes unseen)."""
    return {str(p.relative_to(root)): (p.stat().st_size if p.is_file() else -1,
                                       p.stat().st_mode)
            for p in sorted(root.rglob("*"))}


def _run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse usage errors
        return int(exc.code)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_one_line_and_leaves_nothing(case, inputs, tmp_path, monkeypatch,
                                                  capsys):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(outputs.os, "access", _no_write_permission)
    if case.setup:
        SETUPS[case.setup]()
    if case.fault:
        _fault(case.fault, monkeypatch)
    argv = [arg.replace("{in}", str(inputs)) for arg in case.argv]
    before = _listing(tmp_path), _listing(inputs)
    capsys.readouterr()

    status = _run(argv)

    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert status != 0
    if case.status is not None:
        assert status == case.status
    assert "Traceback" not in err
    assert len(lines) == 1, err
    assert case.expect in lines[0], lines[0]
    assert (_listing(tmp_path), _listing(inputs)) == before
    assert not (inputs / "PWNED").exists()  # no crafted checkpoint ran its code


def _command_of(case: Case) -> str:
    return case.argv[0]


def test_every_command_has_bad_input_cases():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    counts = Counter(_command_of(case) for case in CASES)
    assert len(CASES) >= 60
    for command in sub.choices:
        assert counts[command] >= 1, f"no bad-input case for `cryolab {command}`"
