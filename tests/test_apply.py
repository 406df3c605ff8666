"""struc2mapGAN generation chooses whole-map inference or tiles by a memory bound, and the
default gives the same map as the explicit choice it makes."""

from __future__ import annotations

import numpy as np
import pytest

from cryolab.apply import GAN_BYTES_PER_VOXEL_CHANNEL, generate_map, whole_map_fits
from cryolab.io import Atoms

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def generator():
    import torch

    from cryolab.nn.unetpp import UNetPlusPlus3D

    torch.manual_seed(0)
    return UNetPlusPlus3D(base_channels=2, levels=2).eval()


@pytest.fixture(scope="module")
def atoms() -> Atoms:
    """A 20-atom random coil of carbons and nitrogens inside about 12 Å."""
    rng = np.random.default_rng(3)
    xyz = np.cumsum(rng.normal(0.0, 1.0, (20, 3)), axis=0)
    z = np.where(np.arange(20) % 3 == 0, 7, 6)
    return Atoms(xyz, z, 2.0 * z.astype(float), np.where(z == 7, "N", "C"))


def test_memory_bound_decides(generator) -> None:  # noqa: ANN001
    shape = (40, 50, 60)
    need = np.prod(shape) * 2 * GAN_BYTES_PER_VOXEL_CHANNEL  # width 2
    assert whole_map_fits(generator, shape, max_memory=need)
    assert not whole_map_fits(generator, shape, max_memory=need - 1)


@pytest.mark.parametrize("max_memory, explicit", [(2**31, True), (1.0, False)])
def test_default_equals_the_path_it_chooses(generator, atoms, max_memory, explicit) -> None:  # noqa: ANN001
    auto = generate_map(generator, atoms, max_memory=max_memory, patch=16, core=8)
    chosen = generate_map(generator, atoms, whole=explicit, patch=16, core=8)
    other = generate_map(generator, atoms, whole=not explicit, patch=16, core=8)
    np.testing.assert_array_equal(auto.data, chosen.data)
    assert auto.shape == other.shape
    # InstanceNorm sees a tile or the whole map: the two paths really differ
    assert np.abs(auto.data - other.data).max() > 1e-3 * np.abs(auto.data).max()


@pytest.mark.parametrize("flag, whole", [("auto", None), ("whole", True), ("tiles", False)])
def test_simulate_map_inference_flag(tmp_path, monkeypatch, atoms, flag, whole) -> None:  # noqa: ANN001
    """``simulate-map --method gan --inference`` reaches generate_map as ``whole=``."""
    import gemmi

    from cryolab import apply
    from cryolab.cli import main
    from cryolab.io import Volume

    seen = {}

    def spy(generator, structure, **options):  # noqa: ANN001, ANN202
        seen.update(options)
        return Volume(np.zeros((4, 4, 4), np.float32), 1.0, 0.0)

    monkeypatch.setattr(apply, "generate_map", spy)
    st = gemmi.Structure()
    model, chain, res = gemmi.Model("1"), gemmi.Chain("A"), gemmi.Residue()
    res.name, res.seqid = "GLY", gemmi.SeqId(1, " ")
    for i, (x, y, z) in enumerate(atoms.xyz[:4]):
        atom = gemmi.Atom()
        atom.name, atom.element, atom.pos = f"C{i}", gemmi.Element("C"), gemmi.Position(x, y, z)
        res.add_atom(atom)
    chain.add_residue(res)
    model.add_chain(chain)
    st.add_model(model)
    st.write_pdb(str(tmp_path / "gly.pdb"))
    assert main(["simulate-map", str(tmp_path / "gly.pdb"), "--method", "gan", "--device", "cpu",
                 "--inference", flag, "--out", str(tmp_path / "gan.mrc")]) == 0
    assert seen["whole"] is whole
