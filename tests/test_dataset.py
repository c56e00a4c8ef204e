"""Determinism, sharding, resumption and the torch Dataset."""

import os

import numpy as np
import pytest
import torch

from conftest import assert_clean_exit, run_script
from ml_phasing import dataset
from ml_phasing.examples import simulation
from ml_phasing.examples.hkl_box import CHANNELS

ARGS = [
    "n_examples=7",
    "examples_per_shard=3",
    "d_min_low=2.0",
    "d_min_high=1.5",
    "random_atoms.n_atoms_max=14",
    "random_seed=11",
]


def shard_bytes(directory):
    names = sorted(n for n in os.listdir(directory) if n.startswith("shard_"))
    return {n: open(os.path.join(directory, n), "rb").read() for n in names}


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    base = tmp_path_factory.mktemp("serial")
    assert_clean_exit(run_script("ml_phasing.simulate", *ARGS, "output.directory=ds", cwd=base))
    return base / "ds"


def test_same_seed_same_bytes_and_nproc_independent(serial, tmp_path):
    assert_clean_exit(run_script("ml_phasing.simulate", *ARGS, "nproc=2", "output.directory=ds", cwd=tmp_path))
    a, b = shard_bytes(serial), shard_bytes(tmp_path / "ds")
    assert list(a) == ["shard_00000.h5", "shard_00001.h5", "shard_00002.h5"]
    assert a == b
    assert (serial / "dataset.json").read_bytes() == (tmp_path / "ds" / "dataset.json").read_bytes()


def test_array_jobs_equal_serial(serial, tmp_path):
    for k in (2, 0, 1):  # any order, one process each
        assert_clean_exit(
            run_script("ml_phasing.simulate", *ARGS, f"shard_index={k}", "output.directory=ds", cwd=tmp_path)
        )
    assert shard_bytes(serial) == shard_bytes(tmp_path / "ds")


def test_other_seed_other_data(serial, tmp_path):
    args = [a for a in ARGS if not a.startswith("random_seed")] + ["random_seed=12"]
    assert_clean_exit(run_script("ml_phasing.simulate", *args, "output.directory=ds", cwd=tmp_path))
    assert shard_bytes(serial)["shard_00000.h5"] != shard_bytes(tmp_path / "ds")["shard_00000.h5"]


def test_rerun_replaces_truncated_shard_and_stale_partials(serial, tmp_path):
    import shutil

    ds = tmp_path / "ds"
    shutil.copytree(serial, ds)
    full = (ds / "shard_00001.h5").read_bytes()
    (ds / "shard_00001.h5").write_bytes(full[: len(full) // 2])  # a disk that filled up
    (ds / ".shard_00002.abc.partial.h5").write_bytes(b"left by a killed run")
    os.remove(ds / "shard_00002.h5")
    # before the rerun, the dataset says what it lacks (ml_phasing.train puts this in its log)
    partial = dataset.SimulatedDataset(str(ds))
    warning = partial.completeness_warning()
    assert "2 of 3 shards are not usable" in warning and "shard_00002.h5 missing" in warning
    assert "shard_00001.h5 incomplete" in warning and f"using {len(partial)} of" in warning
    assert dataset.SimulatedDataset(str(serial)).completeness_warning() is None
    proc = run_script("ml_phasing.simulate", *ARGS, "output.directory=ds", "--json", cwd=tmp_path)
    assert_clean_exit(proc)
    import json

    result = json.loads((tmp_path / "simulate_result.json").read_text())
    assert result["shards_kept"] == [0] and result["shards_written"] == [1, 2]
    assert shard_bytes(serial) == shard_bytes(ds)
    assert not list(ds.glob(".*partial*"))


def test_interrupted_shard_leaves_nothing(tmp_path):
    """An exception (kill, full disk) mid-shard leaves neither the shard nor a temp file."""
    from conftest import make_params

    params = make_params(n_examples=4, d_min_low=2.0, d_min_high=2.0)
    config = simulation.SimulationConfig.from_params(params)
    stream = simulation.ExampleStream(config, 1)

    def failing(start, stop):
        for i, ex in enumerate(stream(start, stop)):
            if i == 2:
                raise KeyboardInterrupt
            yield ex

    path = str(tmp_path / "shard_00000.h5")
    with pytest.raises(KeyboardInterrupt):
        simulation.write_shard(path, 0, 4, failing, {"fingerprint": "x"})
    assert os.listdir(tmp_path) == []


def test_reader_fields_metadata_and_dense_box(serial):
    ds = dataset.torch_dataset(str(serial), dense_amplitudes=True)
    assert len(ds) == 7
    item = ds[5]
    assert isinstance(item["patterson"], torch.Tensor) and item["patterson"].ndim == 3
    assert item["density"].shape == item["patterson"].shape
    assert float(item["patterson"].abs().max()) == pytest.approx(1.0)
    meta = ds.base.meta(5)
    assert meta["index"] == 5 and meta["space_group"] and len(meta["unit_cell"]) == 6
    assert meta["patterson_scale"] > 0 and meta["seed"] != ds.base.meta(4)["seed"]
    box = item["hkl_box"].numpy()
    assert box.shape[0] == len(CHANNELS)
    lo, hi = ds.base.hkl_box
    assert box.shape[1:] == tuple(hi - lo + 1)
    masks = box[CHANNELS.index("mask_measured") :]
    assert masks.sum(0).max() == 1  # every voxel has at most one role
    n_refl = len(item["reflections/indices"])
    assert masks[0].sum() + masks[1].sum() == n_refl
    assert masks[0].sum() == int(item["reflections/measured"].sum())
    assert masks[3].sum() == 1  # F000
    f = box[CHANNELS.index("f")]
    assert np.all(f[masks[2] == 1] == 0)  # absences carry no amplitude


def test_dataloader_with_workers(serial):
    ds = dataset.torch_dataset(str(serial), fields=["reflections/f", "atoms/atomic_number"])
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
    items = list(loader)
    assert len(items) == 7
    assert torch.equal(items[3]["reflections/f"], ds[3]["reflections/f"])


def test_reader_rejects_missing_fields(serial):
    from libtbx.utils import Sorry

    with pytest.raises(Sorry, match="not in"):
        dataset.SimulatedDataset(str(serial), fields=["powder"])


def test_compressed_shards_read_the_same(serial, tmp_path):
    assert_clean_exit(
        run_script("ml_phasing.simulate", *ARGS, "output.directory=ds", "output.compression=gzip", cwd=tmp_path)
    )
    a = dataset.SimulatedDataset(str(serial))
    b = dataset.SimulatedDataset(str(tmp_path / "ds"))
    for i in (0, 6):
        for k in ("patterson", "reflections/f"):
            np.testing.assert_array_equal(a[i][k], b[i][k])


def test_full_disk_gives_sorry_and_no_shard(tmp_path, monkeypatch):
    """An OSError while writing (ENOSPC) ends with a Sorry and discards the shard."""
    import errno
    from iotbx.cli_parser import run_program
    from libtbx.utils import Sorry, null_out
    from ml_phasing.programs.simulate import Program

    def no_space(self):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(dataset.ShardWriter, "flush", no_space)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(Sorry, match="No space left on device"):
        run_program(Program, args=["n_examples=2", "d_min_low=2", "d_min_high=2"], logger=null_out())
    assert not list(tmp_path.glob("simulated/*.h5")) and not list(tmp_path.glob("simulated/.*"))


def test_progress_bar_only_on_terminals(monkeypatch, capsys):
    import sys
    from ml_phasing.program_support import progress

    with progress(total=3, desc="simulate") as bar:
        bar.update(3)
    assert "simulate" not in capsys.readouterr().err  # pytest's stderr is not a tty
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    with progress(total=3, desc="simulate") as bar:
        bar.update(3)
    assert "simulate" in capsys.readouterr().err


def test_examples_made_on_the_fly_are_simulate_examples(tmp_path):
    """Issue 11: position i of a GeneratedDataset is simulate's example offset + i of the recipe
    (so a run on the fly sees what simulate would have written), a new offset gives new
    examples, and a recipe whose examples do not share one grid is refused."""
    import pytest
    from libtbx.utils import Sorry

    recipe = tmp_path / "r.eff"
    recipe.write_text(
        "random_seed = 5\nsimulate { source = peptides\n d_min_low = 1.5\n d_min_high = 1.5\n"
        " outputs { amplitudes = False }\n maps { grid_step = 0.5 } }\n"
    )
    data = dataset.GeneratedDataset(str(recipe), 4, ["patterson", "density"])
    config = simulation.SimulationConfig.from_recipe(str(recipe), None)
    source = simulation.StructureSource(config)
    for i in (0, 3):
        expected = simulation.make_example(config, i, source)
        item = data[i]
        assert np.array_equal(item["patterson"], expected["fields"]["patterson"])
        assert item["_meta"]["seed"] == expected["meta"]["seed"]
    data.offset = 4
    assert not np.array_equal(data[0]["density"], simulation.make_example(config, 0, source)["fields"]["density"])
    kept = dataset.GeneratedDataset(str(recipe), 3, ["patterson", "density"], random_seed=9, materialise=True)
    assert kept.meta(2)["index"] == 2 and kept.meta(2)["seed"] != data.meta(2)["seed"]
    other = tmp_path / "random.eff"
    other.write_text("simulate { source = random_atoms }\n")
    with pytest.raises(Sorry, match="one map grid"):
        dataset.GeneratedDataset(str(other), 2, ["patterson", "density"])


def test_random_cells_on_the_fly_for_the_fixed_shape_fields(tmp_path):
    """Issue 15: random cells (each its own cell) serve the intensity-to-density task on the fly,
    since its hkl cube and voxel grid have one shape whatever the cell; position i is simulate's
    example i, and a recipe that asks also for a map on the cell's grid is refused."""
    import pytest
    from libtbx.utils import Sorry

    recipe = tmp_path / "scripps.eff"
    recipe.write_text(
        "random_seed = 2\nsimulate { source = random_atoms\n d_min_low = 1.0\n d_min_high = 1.0\n"
        " random_atoms { space_groups = P1\n n_atoms_min = 3\n n_atoms_max = 4 }\n"
        " outputs { amplitudes = False\n patterson = False\n density = False\n intensity_grid = True\n"
        " voxel_atoms = True }\n intensity_grid { h_max = 2 }\n voxel_atoms { grid_points = 6 } }\n"
    )
    fields = ["intensity_grid", "voxel_atoms"]
    data = dataset.GeneratedDataset(str(recipe), 3, fields)
    config = simulation.SimulationConfig.from_recipe(str(recipe), None)
    source = simulation.StructureSource(config)
    cells = set()
    for i in range(3):
        expected = simulation.make_example(config, i, source)
        item = data[i]
        assert item["intensity_grid"].shape == (5, 5, 5) and item["voxel_atoms"].shape == (6, 6, 6)
        assert np.array_equal(item["intensity_grid"], expected["fields"]["intensity_grid"])
        assert np.array_equal(item["voxel_atoms"], expected["fields"]["voxel_atoms"])
        cells.add(tuple(item["_meta"]["unit_cell"]))
    assert len(cells) == 3  # random cells, one grid shape
    with pytest.raises(Sorry, match="fixed-shape fields"):
        dataset.GeneratedDataset(str(recipe), 2, [*fields, "patterson"])
