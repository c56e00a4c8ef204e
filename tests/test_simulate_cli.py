"""ml_phasing.simulate through its installed console script, as users run it."""

import json
import os
import re
import shlex

import h5py
import pytest

from conftest import assert_clean_exit, run_script

FAST = ["n_examples=6", "examples_per_shard=3", "d_min_low=2.0", "d_min_high=1.5", "random_atoms.n_atoms_max=12"]


def test_show_defaults():
    proc = run_script("ml_phasing.simulate", "--show-defaults")
    assert_clean_exit(proc)
    for name in ("random_seed", "source", "d_min_low", "space_groups", "write_examples"):
        assert name in proc.stdout


def test_no_arguments_prints_help():
    proc = run_script("ml_phasing.simulate")
    assert_clean_exit(proc)
    assert "Examples:" in proc.stdout


def test_dry_run_writes_nothing(tmp_path):
    proc = run_script("ml_phasing.simulate", *FAST, "--dry-run", cwd=tmp_path)
    assert_clean_exit(proc)
    assert not (tmp_path / "simulated").exists()


def test_run_key_value_json_and_log(tmp_path):
    proc = run_script("ml_phasing.simulate", *FAST, "output.directory=ds", "random_seed=5", "--json", cwd=tmp_path)
    assert_clean_exit(proc)
    manifest = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert manifest["n_examples"] == 6 and manifest["n_shards"] == 2
    assert "random_seed = 5" in manifest["parameters"]
    result = json.loads((tmp_path / "simulate_result.json").read_text())
    assert result["n_examples"] == 6 and result["shards_written"] == [0, 1]
    log = (tmp_path / "ds" / "simulate.log").read_text()
    assert "ml_phasing.simulate 0." in log
    assert "random_seed: 5" in log and "device:" in log
    assert "n_examples = 6" in log  # the changed parameters
    with h5py.File(tmp_path / "ds" / "shard_00001.h5") as f:
        assert f.attrs["n_examples"] == 3 and f.attrs["first_example"] == 3


def test_eff_file_and_overwrite(tmp_path):
    eff = tmp_path / "recipe.eff"
    eff.write_text(
        "simulate {\n  n_examples = 4\n  d_min_low = 2.0\n  d_min_high = 2.0\n"
        "  random_atoms.n_atoms_max = 10\n}\noutput.directory = ds\n"
    )
    assert_clean_exit(run_script("ml_phasing.simulate", eff, cwd=tmp_path))
    # Same parameters: the rerun keeps the complete shard.
    proc = run_script("ml_phasing.simulate", eff, "--json", cwd=tmp_path)
    assert_clean_exit(proc)
    assert json.loads((tmp_path / "simulate_result.json").read_text())["shards_kept"] == [0]
    # the rerun of the same dataset appended to its log
    assert (tmp_path / "ds" / "simulate.log").read_text().count("Starting ml_phasing.simulate") == 2
    # Other parameters in the same directory: a Sorry, nothing touched (its log included) ...
    before = (tmp_path / "ds" / "shard_00000.h5").read_bytes()
    log_before = (tmp_path / "ds" / "simulate.log").read_bytes()
    proc = run_script("ml_phasing.simulate", eff, "random_seed=9", cwd=tmp_path)
    assert_clean_exit(proc, 1)
    assert proc.stderr.strip().startswith("Sorry:") and "--overwrite" in proc.stderr
    assert (tmp_path / "ds" / "shard_00000.h5").read_bytes() == before
    assert (tmp_path / "ds" / "simulate.log").read_bytes() == log_before
    # ... unless --overwrite.
    proc = run_script("ml_phasing.simulate", eff, "random_seed=9", "--overwrite", cwd=tmp_path)
    assert_clean_exit(proc)
    assert (tmp_path / "ds" / "shard_00000.h5").read_bytes() != before


@pytest.mark.parametrize(
    "args, message",
    [
        (["random_atoms.space_groups=P7"], "Unknown space group"),
        (["random_atoms.elements=Xx"], "unknown element"),
        (["d_min_low=1.0", "d_min_high=2.0"], "d_min_high"),
        (["n_examples=4", "shard_index=3", "examples_per_shard=2"], "shard_index=3"),
        (["source=structures"], "structures.file"),
        (["source=structures", "structures.file=missing.cif"], "not found"),
        (["source=peptides", "peptides.residues=XYZ"], "unknown residue"),
        (
            ["random_atoms.volume_per_atom_min=1", "random_atoms.volume_per_atom_max=1", "random_atoms.min_distance=3"],
            "cannot place",
        ),
        (["no_such_parameter=1"], "no_such_parameter"),
    ],
)
def test_user_errors_give_one_sorry_line(tmp_path, args, message):
    proc = run_script("ml_phasing.simulate", *args, "n_examples=2", cwd=tmp_path)
    assert_clean_exit(proc, 1)
    assert proc.stderr.lstrip().startswith("Sorry:"), proc.stderr
    assert message in proc.stderr + proc.stdout
    # No half-made dataset that looks complete.
    assert not list(tmp_path.glob("simulated/shard_*.h5"))


def test_empty_and_garbage_structure_files(tmp_path):
    (tmp_path / "empty.cif").write_text("")
    (tmp_path / "junk.pdb").write_text("this is not a PDB file\n")
    for name in ("empty.cif", "junk.pdb"):
        proc = run_script(
            "ml_phasing.simulate", "source=structures", f"structures.file={name}", "n_examples=1", cwd=tmp_path
        )
        assert_clean_exit(proc, 1)
        assert proc.stderr.lstrip().startswith("Sorry:")


def _help_examples():
    from ml_phasing.programs.simulate import Program

    text = Program.description.replace("\\\n", " ")
    return [
        re.sub(r"\s+#.*$", "", ln).strip() for ln in text.splitlines() if ln.strip().startswith("ml_phasing.simulate ")
    ]


def test_help_has_examples():
    assert len(_help_examples()) >= 4


@pytest.mark.parametrize("command", _help_examples())
def test_help_examples_run(tmp_path, command, realdata_or_none):
    """Each example command of the help text validates (--dry-run) with its files present."""
    from ml_phasing.sources.random_atoms import RandomAtomsConfig, make_structure
    from ml_phasing.examples.seeding import seed_everything

    cfg = RandomAtomsConfig(("P21",), ("C", "O"), (1, 1), 5, 8, 18, 20, 1.2, 1, 3)
    for name in ("a.cif", "b.cif"):
        xs, _ = make_structure(cfg, seed_everything(1))
        import io

        buf = io.StringIO()
        xs.as_cif_simple(out=buf)
        (tmp_path / name).write_text(buf.getvalue())
    if "1orc.pdb" in command:
        if realdata_or_none is None:
            pytest.skip("needs ../shared/realdata/pdb/1orc.pdb")
        (tmp_path / "1orc.pdb").write_bytes(open(os.path.join(realdata_or_none, "pdb", "1orc.pdb"), "rb").read())
    args = shlex.split(command)[1:]
    proc = run_script("ml_phasing.simulate", *args, "--dry-run", cwd=tmp_path)
    assert_clean_exit(proc)


def test_real_structures_and_peptides_from_files(tmp_path, realdata):
    """End to end on real files: COD CIFs and a PDB entry (skips without ../shared)."""
    cifs = [os.path.join(realdata, "cif", n) for n in ("COD_2000724_P21c.cif", "COD_2010359_P212121.cif")]
    proc = run_script(
        "ml_phasing.simulate",
        "source=structures",
        *[f"structures.file={c}" for c in cifs],
        "n_examples=2",
        "d_min_high=1.2",
        "output.directory=real",
        cwd=tmp_path,
    )
    assert_clean_exit(proc)
    from ml_phasing.dataset import SimulatedDataset

    ds = SimulatedDataset(str(tmp_path / "real"))
    assert [ds.meta(i)["space_group"] for i in range(2)] == ["P 1 21/c 1", "P 21 21 21"]
    assert ds.meta(0)["file"] == "COD_2000724_P21c.cif"
    pdb = os.path.join(realdata, "pdb", "1orc.pdb")
    proc = run_script(
        "ml_phasing.simulate",
        "source=peptides",
        "peptides.kind=dipeptide",
        "peptides.cell_edge=12",
        f"peptides.file={pdb}",
        "n_examples=3",
        "output.directory=pep",
        cwd=tmp_path,
    )
    assert_clean_exit(proc)
    ds = SimulatedDataset(str(tmp_path / "pep"))
    assert all(ds.meta(i)["fragment_origin"] == "file" for i in range(3))
