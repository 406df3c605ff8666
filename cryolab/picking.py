"""Particles from a segmentation, and the SHREC cryo-ET benchmark's way of scoring them.

A segmentation network labels voxels; a biologist wants a *particle list* (positions and
classes) to average or count. The simplest route from one to the other is
:func:`locate_particles`: split each class's voxels into connected components (26-connected by
default) and report each component's centroid, dropping components too small to be a
particle.

:func:`score_picks` applies the rule of the SHREC 2021 cryo-ET track (Gubins et al.): a
predicted position is a **hit** when it lies inside a true particle's occupancy (its voxels),
whatever its distance to the centre.

- true positives (TP): true particles hit at least once;
- redundant detections (RD): further hits on a particle already hit (neither TP nor FP);
- false positives (FP): predictions inside no true particle;
- false negatives (FN): true particles never hit;

precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = their harmonic mean. With classes,
a class-``c`` prediction only counts when it lands in a particle of class ``c``.

The ground truth is an *instance* volume (one integer id per particle, 0 elsewhere);
:func:`instances_from_labels` makes one from a class atlas when a simulator gives only
classes (touching particles of one class then merge into one instance).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import ndimage

from .errors import ConfigError

__all__ = ["locate_particles", "instances_from_labels", "score_picks", "score_by_class"]


def _structure(connectivity: int) -> np.ndarray:
    if connectivity not in (1, 2, 3):
        raise ConfigError(f"connectivity must be 1, 2 or 3 (6-, 18-, 26-neighbours), "
                          f"got {connectivity}")
    return ndimage.generate_binary_structure(3, connectivity)


def locate_particles(
    labels: np.ndarray,
    classes: Sequence[int] | None = None,
    min_voxels: int = 1,
    connectivity: int = 3,
) -> pd.DataFrame:
    """Connected components of each class of a label volume, as a particle list.

    Args:
        labels: integer label volume (z, y, x); 0 is background.
        classes: labels to search (default: every non-zero label present).
        min_voxels: drop components with fewer voxels (noise specks).
        connectivity: 1, 2 or 3 for 6-, 18- or 26-connected components.
    Returns:
        A DataFrame with one row per particle: ``z, y, x`` (centroid, fractional voxel
        indices), ``class`` and ``voxels`` (component size).
    """
    labels = np.asarray(labels)
    if labels.ndim != 3 or not np.issubdtype(labels.dtype, np.integer):
        raise ConfigError(f"labels must be a 3D integer volume, got {labels.dtype} "
                          f"{labels.shape}")
    if classes is None:
        classes = [int(c) for c in np.unique(labels) if c != 0]
    structure = _structure(connectivity)
    rows = []
    for c in classes:
        components, n = ndimage.label(labels == c, structure=structure)
        if n == 0:
            continue
        index = np.arange(1, n + 1)
        sizes = ndimage.sum_labels(np.ones_like(components), components, index)
        keep = index[sizes >= min_voxels]
        if len(keep) == 0:
            continue
        centres = np.array(ndimage.center_of_mass(np.ones_like(components), components, keep))
        rows.append(pd.DataFrame({
            "z": centres[:, 0], "y": centres[:, 1], "x": centres[:, 2],
            "class": int(c), "voxels": sizes[keep - 1].astype(int),
        }))
    if not rows:
        return pd.DataFrame({"z": [], "y": [], "x": [], "class": [], "voxels": []})
    return pd.concat(rows, ignore_index=True)


def instances_from_labels(
    labels: np.ndarray, classes: Sequence[int], connectivity: int = 1
) -> tuple[np.ndarray, dict[int, int]]:
    """An instance volume from a class volume: each connected component becomes a particle.

    Returns:
        ``(instances, class_of)``: int32 volume with ids 1..N (0 elsewhere) and a dict from
        instance id to its class.
    """
    labels = np.asarray(labels)
    instances = np.zeros(labels.shape, dtype=np.int32)
    class_of: dict[int, int] = {}
    structure = _structure(connectivity)
    for c in classes:
        components, n = ndimage.label(labels == c, structure=structure)
        inside = components > 0
        offset = len(class_of)
        instances[inside] = components[inside] + offset
        class_of.update({offset + i: int(c) for i in range(1, n + 1)})
    return instances, class_of


def score_picks(
    positions: np.ndarray, instances: np.ndarray, targets: Sequence[int] | None = None
) -> dict[str, float]:
    """Score predicted positions against true particle volumes with the SHREC 2021 rule.

    Args:
        positions: (N, 3) predicted positions as fractional voxel indices (z, y, x).
        instances: int volume of true particles, one id per particle, 0 elsewhere.
        targets: the particle ids to score against (default: every id present); a hit on
            any other particle counts as a false positive.
    Returns:
        ``tp, fp, fn, rd`` (counts) and ``precision, recall, f1`` (NaN-free: 0 when
        undefined; 1 for precision and recall when there is nothing to find or predict).
    """
    instances = np.asarray(instances)
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    if instances.ndim != 3:
        raise ConfigError(f"instances must be a 3D volume, got shape {instances.shape}")
    wanted = np.unique(instances[instances > 0]) if targets is None else np.asarray(targets)
    idx = np.rint(positions).astype(int)
    inside = np.all((idx >= 0) & (idx < np.array(instances.shape)), axis=1)
    hit_ids = np.zeros(len(idx), dtype=np.int64)
    hit_ids[inside] = instances[tuple(idx[inside].T)]
    hit_ids[~np.isin(hit_ids, wanted)] = 0
    n_hits = int(np.count_nonzero(hit_ids))
    tp = len(np.unique(hit_ids[hit_ids > 0]))
    fp = len(idx) - n_hits
    fn = len(wanted) - tp
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "rd": n_hits - tp,
            "precision": precision, "recall": recall, "f1": f1}


def score_by_class(
    picks: pd.DataFrame, instances: np.ndarray, class_of: Mapping[int, int]
) -> pd.DataFrame:
    """:func:`score_picks` per class, plus a class-blind ``"all"`` row (localisation only).

    Args:
        picks: particle list with columns ``z, y, x, class`` (as from
            :func:`locate_particles`).
        instances: true particle volume; ``class_of`` maps its ids to classes.
    Returns:
        One row per class (index: class label, then ``"all"``) with the counts and scores.
    """
    rows = {}
    ids = np.array(list(class_of), dtype=np.int64)
    classes = np.array([class_of[i] for i in ids], dtype=np.int64)
    xyz = picks[["z", "y", "x"]].to_numpy(dtype=np.float64)
    for c in sorted(set(classes.tolist())):
        mine = picks["class"].to_numpy() == c
        rows[c] = score_picks(xyz[mine], instances, targets=ids[classes == c])
    rows["all"] = score_picks(xyz, instances, targets=ids)
    return pd.DataFrame.from_dict(rows, orient="index")
