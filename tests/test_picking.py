"""Tests of particle localisation from a segmentation and of SHREC-style scoring."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cryolab.errors import ConfigError
from cryolab.picking import (
    instances_from_labels,
    locate_particles,
    score_by_class,
    score_picks,
)


def _ball(shape, centre, radius):
    z, y, x = np.indices(shape)
    return (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= radius**2


def test_centroids_of_balls_and_specks_dropped():
    shape = (30, 40, 50)
    labels = np.zeros(shape, np.int16)
    truth = {(8.0, 10.0, 12.0): 1, (20.0, 25.0, 35.0): 1, (15.0, 30.0, 10.0): 2}
    for centre, c in truth.items():
        labels[_ball(shape, centre, 4)] = c
    labels[2, 2, 45] = 2  # a one-voxel speck
    picks = locate_particles(labels, min_voxels=5)
    assert len(picks) == 3
    for centre, c in truth.items():
        d = np.linalg.norm(picks[["z", "y", "x"]].to_numpy() - np.array(centre), axis=1)
        i = int(np.argmin(d))
        assert d[i] < 1e-9 and picks["class"][i] == c
        assert picks["voxels"][i] == _ball(shape, centre, 4).sum()
    assert len(locate_particles(labels, min_voxels=1)) == 4
    assert list(locate_particles(labels, classes=[2], min_voxels=5)["class"]) == [2]


def test_connectivity_splits_diagonal_neighbours():
    labels = np.zeros((3, 3, 3), np.int64)
    labels[0, 0, 0] = labels[1, 1, 1] = 1
    assert len(locate_particles(labels, connectivity=3)) == 1
    assert len(locate_particles(labels, connectivity=1)) == 2
    assert locate_particles(np.zeros((4, 4, 4), np.int64)).empty


def test_score_counts_hits_redundant_and_misses():
    instances = np.zeros((20, 20, 20), np.int32)
    instances[2:6, 2:6, 2:6] = 1
    instances[10:14, 10:14, 10:14] = 2
    instances[15:19, 2:6, 2:6] = 3
    picks = np.array([
        [3.0, 3.0, 3.0],  # hit 1
        [4.6, 4.4, 4.0],  # hit 1 again (rounds to 5,4,4): redundant
        [12.0, 12.0, 12.0],  # hit 2
        [9.0, 9.0, 9.0],  # empty voxel: false positive
        [30.0, 1.0, 1.0],  # outside the box: false positive
    ])
    s = score_picks(picks, instances)
    assert (s["tp"], s["fp"], s["fn"], s["rd"]) == (2, 2, 1, 1)
    assert s["precision"] == pytest.approx(0.5)
    assert s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    empty = score_picks(np.zeros((0, 3)), instances)
    assert (empty["tp"], empty["fn"], empty["recall"], empty["f1"]) == (0, 3, 0.0, 0.0)


def test_wrong_class_is_a_false_positive():
    instances = np.zeros((10, 10, 10), np.int32)
    instances[1:4, 1:4, 1:4] = 1
    instances[6:9, 6:9, 6:9] = 2
    picks = pd.DataFrame({"z": [2.0, 7.0], "y": [2.0, 7.0], "x": [2.0, 7.0], "class": [1, 1]})
    table = score_by_class(picks, instances, {1: 1, 2: 2})
    assert table.loc[1, "tp"] == 1 and table.loc[1, "fp"] == 1
    assert table.loc[2, "tp"] == 0 and table.loc[2, "fn"] == 1
    assert table.loc["all", "tp"] == 2 and table.loc["all", "f1"] == pytest.approx(1.0)


def test_instances_from_labels_and_round_trip():
    shape = (24, 24, 24)
    labels = np.zeros(shape, np.int64)
    labels[_ball(shape, (6, 6, 6), 3)] = 1
    labels[_ball(shape, (17, 17, 17), 3)] = 1
    labels[_ball(shape, (6, 17, 6), 3)] = 2
    instances, class_of = instances_from_labels(labels, [1, 2])
    assert sorted(class_of.values()) == [1, 1, 2]
    assert set(np.unique(instances)) == {0, 1, 2, 3}
    picks = locate_particles(labels)
    table = score_by_class(picks, instances, class_of)
    assert table.loc["all", "f1"] == 1.0 and table.loc[1, "tp"] == 2


def test_bad_input_is_refused():
    with pytest.raises(ConfigError, match="integer"):
        locate_particles(np.zeros((4, 4, 4), np.float32))
    with pytest.raises(ConfigError, match="connectivity"):
        locate_particles(np.zeros((4, 4, 4), np.int64), connectivity=4)
    with pytest.raises(ConfigError, match="3D"):
        score_picks(np.zeros((1, 3)), np.zeros((4, 4), np.int32))
