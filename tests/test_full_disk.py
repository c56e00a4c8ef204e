"""A full disk, for every program (issue 12): one Sorry line, exit 1, nothing half-written.

The realistic case is a real full disk: where the tests run as root, a 64 kB tmpfs is
mounted and every program writes its outputs there. Elsewhere those tests skip; the
checks that do not need a mount (a truncated map or MTZ is caught before it is renamed
into place; torch checkpoints and HDF5 shards give OSError ENOSPC) run everywhere.
"""

import errno
import os
import subprocess

import numpy as np
import pytest

from conftest import assert_clean_exit, run_console_script as run_script
from ml_phasing.io import atomic_io
from ml_phasing.io import map_io


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    base = tmp_path_factory.mktemp("inputs")
    assert_clean_exit(
        run_script(
            "ml_phasing.simulate",
            "source=peptides",
            "n_examples=24",
            "write_examples=1",
            "d_min_low=1.5",
            "d_min_high=1.5",
            "random_seed=7",
            "output.directory=diala",
            cwd=base,
        )
    )
    assert_clean_exit(
        run_script(
            "ml_phasing.simulate",
            "n_examples=1",
            "write_examples=1",
            "d_min_low=1.2",
            "d_min_high=1.0",
            "random_seed=3",
            "output.directory=ext",
            cwd=base,
        )
    )
    return base


@pytest.fixture
def small_disk(tmp_path):
    """A 64 kB tmpfs (root only); unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def _programs(inputs, disk):
    mtz = inputs / "diala" / "examples" / "example_00000.mtz"
    return {
        "simulate": ("ml_phasing.simulate", ["n_examples=200", f"output.directory={disk}/sim"]),
        "patterson_to_density": ("ml_phasing.patterson_to_density", [mtz, f"output.prefix={disk}/p"]),
        "solve": ("ml_phasing.solve", [mtz, "composition=C6 N2 O2", f"output.prefix={disk}/s"]),
        "extend_resolution": (
            "ml_phasing.extend_resolution",
            [inputs / "ext" / "examples" / "example_00000.mtz", f"output.prefix={disk}/e"],
        ),
        "evaluate": (
            "ml_phasing.evaluate",
            [
                f"reference.file={mtz}",
                "reference.labels=FC,PHIC",
                f"prediction.file={mtz}",
                "prediction.labels=FC,PHIC",
                f"output.prefix={disk}/ev",
            ],
        ),
        "train": (
            "ml_phasing.train",
            [
                f"train.data.train={inputs / 'diala'}",
                "model.patterson_unet.stem_channels=3",
                "model.patterson_unet.channels=4",
                "model.patterson_unet.n_blocks=1",
                "epochs=1",
                f"output.directory={disk}/tr",
            ],
        ),
    }


@pytest.mark.parametrize(
    "program", ["simulate", "patterson_to_density", "solve", "extend_resolution", "evaluate", "train"]
)
def test_a_full_disk_is_one_sorry_and_leaves_nothing_half_written(program, inputs, small_disk):
    script, args = _programs(inputs, small_disk)[program]
    proc = run_script(script, *args, cwd=inputs)
    # exit 1 (not a traceback, not the segfault HDF5 ended simulate with), one Sorry line
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr[-2000:]
    sorry = [line for line in proc.stderr.splitlines() if line.startswith("Sorry:")]
    assert len(sorry) == 1 and "Cannot write" in sorry[0], proc.stderr[-2000:]
    for root, _, files in os.walk(small_disk):
        for name in files:
            path = os.path.join(root, name)
            assert ".partial" not in name and not name.endswith(".lock"), path
            if name.endswith((".ccp4", ".map")):
                atomic_io.check_ccp4_map(path)
            elif name.endswith(".mtz"):
                atomic_io.check_mtz(path)
            elif name.endswith(".h5"):
                raise AssertionError(f"a shard under its final name on a full disk: {path}")


def test_a_truncated_map_or_mtz_is_never_renamed_into_place(tmp_path, monkeypatch):
    """A writer that leaves a short file (as iotbx's C++ writers do on a full disk, without an
    error) is caught by the size check before the rename (no mount needed)."""
    from cctbx import uctbx

    good = tmp_path / "good.ccp4"
    map_io.write_ccp4_map(str(good), uctbx.unit_cell((10, 10, 10, 90, 90, 90)), np.random.rand(8, 10, 12))
    atomic_io.check_ccp4_map(str(good))
    import iotbx.mrcfile

    real_writer = iotbx.mrcfile.write_ccp4_map

    def truncating_writer(file_name, **kwargs):  # what the writer leaves on a full disk
        real_writer(file_name=file_name, **kwargs)
        with open(file_name, "r+b") as f:
            f.truncate(8192)

    monkeypatch.setattr(iotbx.mrcfile, "write_ccp4_map", truncating_writer)
    with pytest.raises(OSError) as e:
        map_io.write_ccp4_map(
            str(tmp_path / "cut.ccp4"), uctbx.unit_cell((10, 10, 10, 90, 90, 90)), np.zeros((8, 10, 12))
        )
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(tmp_path / "cut.ccp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.ccp4"]
    truncated = tmp_path / "t.mtz"
    from cctbx import crystal, miller
    from cctbx.array_family import flex

    ms = miller.build_set(crystal.symmetry((10, 10, 10, 90, 90, 90), "P1"), anomalous_flag=False, d_min=2)
    map_io.write_mtz(str(truncated), [(ms.array(data=flex.double(ms.size(), 1.0)), "F")])
    atomic_io.check_mtz(str(truncated))
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(OSError):
        atomic_io.check_mtz(str(truncated))


def test_shard_and_checkpoint_writers_report_enospc(tmp_path, monkeypatch):
    """The HDF5 shard goes through a Python file object and torch checkpoints through bytes, so a
    full disk is an OSError ENOSPC (h5py's own driver crashed the interpreter; torch raised a
    RuntimeError), and the temporary files are removed."""
    from ml_phasing import dataset

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(dataset._GuardedFile, "_write_raw", full)
    writer = dataset.ShardWriter(str(tmp_path / "shard_00000.h5"), {"fingerprint": "x"})
    writer.append({"meta": {"i": 0}, "fields": {"patterson": np.zeros((4, 4, 4), np.float32)}})
    with pytest.raises(OSError) as e:
        writer.close()
    writer.abort()
    assert e.value.errno == errno.ENOSPC

    class FullFile:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic_io, "open", FullFile, raising=False)
    with pytest.raises(OSError) as e:
        atomic_io.torch_save({"a": 1}, str(tmp_path / "checkpoint.pt"))
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(tmp_path / "checkpoint.pt")
    assert list(tmp_path.iterdir()) == []
