"""Figures in one style for the whole book: slices, montages, curves, isosurfaces, 3D viewers.

Every plotting function returns a matplotlib ``Figure``; :func:`save_figure` writes it beside
the run's ``metrics.json`` (PNG) so the book and the tests can find it. Interactive 3D comes in
two kinds: :func:`molecule_viewer` + :func:`interactive_figure` (py3Dmol, plain HTML and
JavaScript, so it also works in the static book) and :func:`nglview_map_and_model` (a Jupyter
widget, for readers in JupyterLab).
"""

from __future__ import annotations

import base64
import html
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from .density import resample
from .errors import ConfigError
from .io import Atoms, Volume, write_map
from .results import results_dir

__all__ = [
    "use_style",
    "orthoslices",
    "compare_slices",
    "plot_history",
    "isosurface",
    "save_figure",
    "Contour",
    "molecule_viewer",
    "interactive_figure",
    "nglview_map_and_model",
]

STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 130,
    "savefig.bbox": "tight",
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "image.cmap": "gray",
    "image.interpolation": "nearest",
    "axes.prop_cycle": matplotlib.cycler(
        color=["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf"]
    ),
}


def use_style() -> None:
    """Apply the book's matplotlib style (called by every notebook's first code cell)."""
    plt.rcParams.update(STYLE)


def _array(v: Volume | np.ndarray) -> np.ndarray:
    return v.data if isinstance(v, Volume) else np.asarray(v)


def orthoslices(
    volume: Volume | np.ndarray,
    index: Sequence[int] | None = None,
    points_xyz: np.ndarray | None = None,
    slab: float = 2.0,
    title: str | None = None,
    cmap: str = "gray",
) -> plt.Figure:
    """Three orthogonal central slices (XY, XZ, YZ) of a volume.

    Args:
        volume: the map; a :class:`Volume` is needed to overlay ``points_xyz``.
        index: (z, y, x) voxel of the slice planes; default the centre.
        points_xyz: optional (N, 3) atom positions in Å drawn where within ``slab`` Å of a plane.
        slab: half-thickness in Å of the slab of atoms shown on each slice.
    """
    data = _array(volume)
    z0, y0, x0 = index if index is not None else [n // 2 for n in data.shape]
    planes = [
        (f"XY (z = {z0})", data[z0], (2, 1), 0, z0),
        (f"XZ (y = {y0})", data[:, y0], (2, 0), 1, y0),
        (f"YZ (x = {x0})", data[:, :, x0], (1, 0), 2, x0),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6), constrained_layout=True)
    lo, hi = np.percentile(data, [1, 99.5])
    for ax, (name, img, (col, row), normal, at) in zip(axes, planes, strict=True):
        ax.imshow(img, cmap=cmap, vmin=lo, vmax=hi, origin="lower")
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
        if points_xyz is not None and isinstance(volume, Volume):
            idx = volume.index_of(points_xyz)  # (z, y, x) fractional
            near = np.abs(idx[:, normal] - at) * volume.voxel_size[normal] <= slab
            ax.scatter(idx[near, col], idx[near, row], s=3, c="#ffbf00", linewidths=0)
    if title:
        fig.suptitle(title)
    return fig


def compare_slices(
    volumes: Sequence[Volume | np.ndarray],
    titles: Sequence[str],
    axis: int = 0,
    index: int | None = None,
    shared_scale: bool = False,
    cmap: str = "gray",
) -> plt.Figure:
    """The same slice through several volumes side by side (each scaled to its own range
    unless ``shared_scale``)."""
    arrays = [_array(v) for v in volumes]
    at = arrays[0].shape[axis] // 2 if index is None else index
    fig, axes = plt.subplots(
        1, len(arrays), figsize=(3.2 * len(arrays), 3.4), constrained_layout=True, squeeze=False
    )
    glo, ghi = np.percentile(np.concatenate([a.ravel() for a in arrays]), [1, 99.5])
    for ax, a, t in zip(axes[0], arrays, titles, strict=True):
        img = np.take(a, at, axis=axis)
        lo, hi = (glo, ghi) if shared_scale else np.percentile(a, [1, 99.5])
        ax.imshow(img, cmap=cmap, vmin=lo, vmax=hi, origin="lower")
        ax.set_title(t)
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


def plot_history(
    series: dict[str, Sequence[float]],
    xlabel: str = "epoch",
    ylabel: str = "",
    references: dict[str, float] | None = None,
    logy: bool = False,
    title: str | None = None,
) -> plt.Figure:
    """Training curves; ``references`` draws labelled horizontal lines (published values)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.5), constrained_layout=True)
    for name, values in series.items():
        marker = "." if len(values) < 40 else None
        ax.plot(np.arange(1, len(values) + 1), values, label=name, marker=marker)
    for name, value in (references or {}).items():
        ax.axhline(value, ls="--", lw=1, color="0.4")
        ax.annotate(name, (1, value), textcoords="offset points", xytext=(2, 3), fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.legend(frameon=False)
    return fig


def _top_5_percent(a: np.ndarray) -> float:
    """The contour level exceeded by 5% of the voxels (the book's default isosurface level)."""
    return float(np.quantile(a, 0.95))


def isosurface(
    volumes: Sequence[Volume | np.ndarray],
    titles: Sequence[str],
    level: float | Sequence[float] | None = None,
    color: str = "#5b8fd6",
) -> plt.Figure:
    """Static isosurfaces (marching cubes) of one or more volumes, for the printed book.

    ``level`` defaults to the value exceeded by 5% of each volume's voxels.
    """
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection
    from skimage.measure import marching_cubes

    arrays = [_array(v) for v in volumes]
    levels = level if isinstance(level, Sequence) else [level] * len(arrays)
    fig = plt.figure(figsize=(3.4 * len(arrays), 3.6), constrained_layout=True)
    for i, (a, t, lev) in enumerate(zip(arrays, titles, levels, strict=True)):
        ax = fig.add_subplot(1, len(arrays), i + 1, projection="3d")
        lev = _top_5_percent(a) if lev is None else float(lev)
        if a.min() < lev < a.max():
            verts, faces, _, _ = marching_cubes(a, lev)
            mesh = Poly3DCollection(verts[faces][:, :, ::-1], alpha=0.9, linewidths=0)
            mesh.set_facecolor(color)
            ax.add_collection3d(mesh)
        for setlim, n in zip((ax.set_xlim, ax.set_ylim, ax.set_zlim), a.shape[::-1], strict=True):
            setlim(0, n)
        ax.set_title(t)
        ax.set_axis_off()
    return fig


def save_figure(fig: plt.Figure, notebook: str, profile: str, name: str) -> Path:
    """Save ``fig`` as ``results/<notebook>/<profile>/<name>.png`` and return the path."""
    path = results_dir(notebook, profile) / f"{name}.png"
    fig.savefig(path)
    return path


@dataclass
class Contour:
    """One isosurface of a map in a :func:`molecule_viewer`.

    Attributes:
        volume: the map, placed in Å like the atoms shown with it.
        level: contour level in the map's units; ``None`` = the value exceeded by 5% of voxels.
        color: CSS colour of the surface.
        opacity: 0 (invisible) to 1 (opaque).
        wireframe: draw a mesh instead of a solid surface.
    """

    volume: Volume
    level: float | None = None
    color: str = "#5b8fd6"
    opacity: float = 0.6
    wireframe: bool = False


def _ccp4_base64(volume: Volume) -> str:
    """The map as a gzipped, base64-encoded MRC file with origin 0, the form 3Dmol.js's
    ``addVolumetricData(..., "ccp4.gz")`` reads in a web page."""
    with tempfile.TemporaryDirectory() as tmp:
        path = write_map(Path(tmp) / "map.mrc.gz", Volume(volume.data, volume.voxel_size, 0.0))
        return base64.b64encode(path.read_bytes()).decode("ascii")


def _xyz_text(atoms: Atoms, shift: np.ndarray) -> str:
    """Heavy atoms in XYZ format (element and x, y, z in Å), moved by ``-shift``."""
    keep = atoms.element != "H"
    lines = [f"{e} {x:.2f} {y:.2f} {z:.2f}"
             for e, (x, y, z) in zip(atoms.element[keep], atoms.xyz[keep] - shift, strict=True)]
    return f"{len(lines)}\ncryolab\n" + "\n".join(lines) + "\n"


def molecule_viewer(
    atoms: Atoms | None = None,
    contours: Sequence[Contour] = (),
    style: str = "stick",
    max_side: int = 64,
    levels: int = 256,
    width: int = 640,
    height: int = 420,
):
    """An interactive 3Dmol.js view (``py3Dmol.view``) of atoms and map contours.

    3Dmol.js reads the maps as MRC files without their origin, so everything is shown in the
    frame of the first contour's grid: its voxel ``[0, 0, 0]`` at 0 and the atoms moved by the
    same amount; all contours must therefore share one origin. To keep pages small, a map
    longer than ``max_side`` voxels on a side is subsampled to fit (nearest voxel, so that
    its values, and the contour level, keep their meaning), and its values are rounded to
    ``levels`` steps between its minimum and maximum, which gzip compresses well. Hydrogens
    are not drawn.

    Args:
        atoms: the model, drawn in the 3Dmol ``style`` ("stick", "sphere", "line", ...).
        contours: isosurfaces to draw (:class:`Contour`).
        width, height: size of the viewer in pixels.
    """
    import py3Dmol

    shift = contours[0].volume.origin[::-1] if contours else np.zeros(3)  # (x, y, z)
    view = py3Dmol.view(width=width, height=height)
    if atoms is not None:
        view.addModel(_xyz_text(atoms, shift), "xyz")
        view.setStyle({style: {}})
    for contour in contours:
        volume = contour.volume
        if not np.allclose(volume.origin[::-1], shift):
            raise ConfigError(f"contours must share one origin: {volume.origin} Å is not "
                              f"{shift[::-1]} Å")
        level = _top_5_percent(volume.data) if contour.level is None else contour.level
        if max(volume.shape) > max_side:
            extent = float(np.max((np.array(volume.shape) - 1) * volume.voxel_size))  # Å
            coarse = extent / (max_side - 1)
            volume = resample(volume, coarse, order=0)  # nearest: keeps the values
        lo, hi = float(volume.data.min()), float(volume.data.max())
        step = (hi - lo) / (levels - 1) if hi > lo else 1.0
        rounded = lo + np.round((volume.data - lo) / step) * step
        view.addVolumetricData(
            _ccp4_base64(volume.with_data(rounded)), "ccp4.gz",
            {"isoval": float(level), "color": contour.color, "opacity": contour.opacity,
             "wireframe": contour.wireframe, "smoothness": 1},
        )
    view.zoomTo()
    return view


def interactive_figure(view, notebook: str, profile: str, fallback: str, alt: str,
                       caption: str):
    """Show a :func:`molecule_viewer` as a captioned figure, with a static fallback.

    The figure holds the saved PNG ``results/<notebook>/<profile>/<fallback>.png`` (see
    :func:`save_figure`) with ``alt`` text, and the 3Dmol.js viewer; once 3Dmol.js has loaded
    and drawn, the static image is removed. Without JavaScript, or when 3Dmol.js cannot be
    loaded, the reader sees the static image. Returns an ``IPython.display.HTML``.
    """
    from IPython.display import HTML

    png = (results_dir(notebook, profile) / f"{fallback}.png").read_bytes()
    viewer = view.write_html()  # py3Dmol's HTML + script for this view (sets its uniqueid)
    uid = view.uniqueid
    return HTML(
        f'<figure class="cryolab-viewer" id="cryolab-viewer-{uid}">\n'
        f'<img class="cryolab-viewer-fallback" alt="{html.escape(alt)}" '
        f'src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">\n'
        f"{viewer}\n"
        f"<figcaption>{html.escape(caption)} Drag to rotate, scroll to zoom.</figcaption>\n"
        "</figure>\n<script>\n"
        f"$3Dmolpromise.then(function() {{ document.querySelector("
        f"'#cryolab-viewer-{uid} .cryolab-viewer-fallback').remove(); }});\n"
        "</script>"
    )


def _nglview_widget_class():
    """``nglview.NGLWidget``, made to ask for the nglview JupyterLab extension installed here.

    nglview 4.0.x asks JupyterLab for version 4.0 of its front end but ships version 3.1.5
    of it, so JupyterLab refuses to draw the widget ("Module nglview-js-widgets, version 4.0
    is not registered"; nglview issue 1181). Where the installed extension's version differs
    from the one the Python package asks for, the widget (and nglview's colour-scheme registry,
    created when nglview is imported) ask for the installed one instead.
    """
    import json

    import nglview
    from jupyter_core.paths import jupyter_path
    from nglview.color import ColormakerRegistry
    from traitlets import Unicode

    wanted = nglview.NGLWidget.class_traits()["_model_module_version"].default_value
    installed = next((json.loads(p.read_text())["version"] for p in (
        Path(d, "nglview-js-widgets", "package.json") for d in jupyter_path("labextensions"))
        if p.is_file()), wanted)
    if installed == wanted:
        return nglview.NGLWidget
    if ColormakerRegistry._model_module_version != installed:
        ColormakerRegistry.close()
        ColormakerRegistry._model_module_version = installed
        ColormakerRegistry._view_module_version = installed
        ColormakerRegistry.open()
    return type("NGLWidget", (nglview.NGLWidget,), {
        "_model_module_version": Unicode(installed).tag(sync=True),
        "_view_module_version": Unicode(installed).tag(sync=True),
    })


def nglview_map_and_model(structure_path: str | Path, map_path: str | Path, level: float):
    """An interactive nglview widget of a model in its map (for JupyterLab readers).

    The web book shows :func:`molecule_viewer` instead: a widget only renders with a live
    kernel.
    """
    view = _nglview_widget_class()()
    view.add_component(str(structure_path))
    view.add_component(str(map_path))
    view.component_1.update_surface(isolevel=level, isolevelType="value", opacity=0.4,
                                     wireframe=True, color="#5b8fd6")
    return view
