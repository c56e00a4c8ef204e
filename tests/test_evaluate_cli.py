"""ml_phasing.evaluate end to end on data from ml_phasing.simulate."""

import json
import re
import shlex

import numpy as np
import pytest

from conftest import assert_clean_exit, run_script


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Two simulated P21 examples (MTZ with FC/PHIC, maps, CIF) and derived predictions."""
    base = tmp_path_factory.mktemp("evaluate")
    args = [
        "n_examples=2",
        "write_examples=2",
        "d_min_low=1.5",
        "d_min_high=1.2",
        "random_atoms.space_groups=P21",
        "random_atoms.n_atoms_min=10",
        "random_atoms.n_atoms_max=14",
        "output.directory=sim",
    ]
    assert_clean_exit(run_script("ml_phasing.simulate", *args, cwd=base))
    ex = base / "sim" / "examples"
    # Predictions: the truth shifted by an allowed origin shift and inverted (must read 0),
    # and the truth with random phases (must read ~90).
    import iotbx.mtz
    from cctbx.array_family import flex
    from ml_phasing.io.map_io import write_mtz

    arrays = {a.info().label_string(): a for a in iotbx.mtz.object(str(ex / "example_00000.mtz")).as_miller_arrays()}
    fc = arrays["FC,PHIC"]
    h = np.asarray(fc.indices(), float)
    f = fc.data().as_numpy_array()
    shifted = np.conj(f) * np.exp(2j * np.pi * h @ np.array([0.5, 0.37, 0.0]))
    rng = np.random.default_rng(0)
    random = np.abs(f) * np.exp(1j * rng.uniform(0, 2 * np.pi, len(f)))
    fom = fc.customized_copy(data=flex.double(len(f), 0.8))
    for name, values in (("shifted", shifted), ("random", random)):
        arr = fc.customized_copy(data=flex.complex_double(values))
        write_mtz(str(base / f"{name}.mtz"), [(arr, "FWT"), (fom, "FOM", "W")], rename={"PHIFWT": "PHWT"})
    return base


def evaluate(cwd, *args):
    proc = run_script("ml_phasing.evaluate", *args, "--json", cwd=cwd)
    assert_clean_exit(proc)
    return proc, json.loads((cwd / "evaluate_result.json").read_text())


def test_shifted_inverted_copy_reads_zero(data):
    proc, res = evaluate(
        data,
        "reference.file=sim/examples/example_00000.mtz",
        "reference.labels=FC,PHIC",
        "prediction.file=shifted.mtz",
        "prediction.labels=FWT,PHWT",
        "--overwrite",
    )
    r = res["predictions"][0]
    assert r["phases"]["overall"]["mean_phase_error"] < 0.01
    assert r["phases"]["inverted_hand"] is True
    assert r["map_cc_aligned"] == pytest.approx(1.0, abs=1e-6) and r["map_cc"] < 0.9
    assert r["amplitudes"]["r_factor"] == pytest.approx(0.0, abs=1e-6)
    for name in (
        "evaluate.json",
        "evaluate_shells.csv",
        "evaluate_phase_error.png",
        "evaluate_fraction_60.png",
        "evaluate_r_factor.png",
        "evaluate_maps.png",
        "evaluate_voxels.png",
        "evaluate.log",
    ):
        assert (data / name).stat().st_size > 0, name
    assert (data / "evaluate.png").exists() is False
    csv = (data / "evaluate_shells.csv").read_text().splitlines()
    assert csv[0].startswith("prediction,quantity,d_max") and len(csv) == 1 + 10 + 10
    assert "origin shift" in proc.stdout and "amplitude R" in proc.stdout


def test_phases_with_fom_and_several_predictions(data):
    _, res = evaluate(
        data,
        "reference.file=sim/examples/example_00000.mtz",
        "prediction.file=shifted.mtz",
        "prediction.file=random.mtz",
        "prediction.phase_label=PHWT",
        "prediction.fom_label=FOM",
        "--overwrite",
        "output.prefix=several",
    )
    first, second = res["predictions"]
    assert first["prediction_kind"] == "phases"
    assert first["phases"]["overall"]["fom_weighted_phase_error"] < 0.01
    assert 75 < second["phases"]["overall"]["mean_phase_error"] < 95
    assert res["summary"]["n_predictions"] == 2
    assert res["summary"]["mean_phase_error"]["median"] == pytest.approx(
        np.median([first["phases"]["overall"]["mean_phase_error"], second["phases"]["overall"]["mean_phase_error"]])
    )
    assert (data / "several_distribution.png").exists()


def test_model_reference_and_map_prediction(data):
    _, res = evaluate(
        data,
        "reference.file=sim/examples/example_00001.cif",
        "prediction.file=sim/examples/example_00001_density.ccp4",
        "--overwrite",
        "output.prefix=model_map",
    )
    r = res["predictions"][0]
    assert r["d_min"] == pytest.approx(1.5, abs=0.02)  # read from the map's content
    assert r["phases"]["overall"]["mean_phase_error"] < 0.5  # model F (cctbx) vs map made from them
    assert r["map_cc_aligned"] > 0.999
    assert r["atoms"]["fraction_matched"] >= 0.6  # at 1.5 A some 1.2-1.5 A neighbours merge into one peak
    assert r["interatomic_vectors"]["recall"] > 0.6


def test_map_against_map(data):
    _, res = evaluate(
        data,
        "reference.file=sim/examples/example_00000_density.ccp4",
        "prediction.file=sim/examples/example_00000_density.ccp4",
        "--overwrite",
        "output.prefix=mapmap",
    )
    r = res["predictions"][0]
    assert r["map_cc_aligned"] == pytest.approx(1.0, abs=1e-6) and r["ssim"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "args, message",
    [
        (
            [
                "reference.file=sim/examples/example_00000.mtz",
                "prediction.file=shifted.mtz",
                "reference.labels=FOO,PHFOO",
            ],
            "available: F,SIGF, FC,PHIC",
        ),
        (
            [
                "reference.file=sim/examples/example_00000.mtz",
                "prediction.file=sim/examples/example_00001.mtz",
                "prediction.labels=FC,PHIC",
            ],
            "Different unit cells",
        ),
        (["reference.file=sim/examples/example_00000.mtz", "prediction.file=missing.mtz"], "not found"),
        (["reference.file=sim/examples/example_00000.mtz", "prediction.file=truncated.mtz"], "Cannot read"),
        (
            [
                "reference.file=sim/examples/example_00000.mtz",
                "prediction.file=shifted.mtz",
                "prediction.fom_label=NOPE",
            ],
            "No column 'NOPE'",
        ),
        (
            [
                "reference.file=sim/examples/example_00000.mtz",
                "prediction.file=sim/examples/example_00000_density.ccp4",
                "d_min=40",
            ],
            "No reflections in common",
        ),
        (["prediction.file=shifted.mtz"], "reference.file"),
        (
            [
                "reference.file=sim/examples/example_00000_density.ccp4",
                "prediction.file=sim/examples/example_00000_patterson_coarse.ccp4",
            ],
            "different grids",
        ),
    ],
)
def test_bad_input_gives_sorry(data, args, message):
    full = (data / "shifted.mtz").read_bytes()
    (data / "truncated.mtz").write_bytes(full[: len(full) // 3])
    from ml_phasing.io.map_io import read_ccp4_map, write_ccp4_map
    from cctbx import uctbx

    m, cell = read_ccp4_map(str(data / "sim" / "examples" / "example_00000_density.ccp4"))
    write_ccp4_map(
        str(data / "sim" / "examples" / "example_00000_patterson_coarse.ccp4"),
        uctbx.unit_cell(cell),
        m[::2, ::2, ::2].copy(),
    )
    proc = run_script("ml_phasing.evaluate", *args, "--overwrite", "output.prefix=bad", cwd=data)
    assert_clean_exit(proc, 1)
    assert proc.stderr.lstrip().startswith("Sorry:") and message in proc.stderr, proc.stderr
    assert not (data / "bad.json").exists()


def test_existing_outputs_need_overwrite(data):
    (data / "keep.json").write_text("{}")
    proc = run_script(
        "ml_phasing.evaluate",
        "reference.file=sim/examples/example_00000.mtz",
        "prediction.file=shifted.mtz",
        "output.prefix=keep",
        cwd=data,
    )
    assert_clean_exit(proc, 1)
    assert "--overwrite" in proc.stderr and (data / "keep.json").read_text() == "{}"


def _help_examples():
    from ml_phasing.programs.evaluate import Program

    text = Program.description.replace("\\\n", " ")
    return [ln.strip() for ln in text.splitlines() if ln.strip().startswith("ml_phasing.evaluate ")]


@pytest.mark.parametrize("command", _help_examples())
def test_help_examples_validate(data, command, tmp_path):
    """Every example of the help text passes --dry-run with its files in place."""
    import shutil

    ex = data / "sim" / "examples"
    shutil.copy(ex / "example_00000.mtz", tmp_path / "true.mtz")
    shutil.copy(data / "shifted.mtz", tmp_path / "pred.mtz")
    shutil.copy(ex / "example_00000.cif", tmp_path / "model.cif")
    shutil.copy(ex / "example_00000_density.ccp4", tmp_path / "pred_density.ccp4")
    shutil.copy(ex / "example_00000_density.ccp4", tmp_path / "true_density.ccp4")
    (tmp_path / "predictions").mkdir()
    shutil.copy(ex / "example_00000_density.ccp4", tmp_path / "predictions" / "a.ccp4")
    (tmp_path / "examples").mkdir()
    shutil.copy(ex / "example_00000.mtz", tmp_path / "examples" / "example_00000.mtz")
    shutil.copy(data / "shifted.mtz", tmp_path / "predictions" / "example_00000_p2d.mtz")
    (tmp_path / "pairs.txt").write_text("true.mtz pred.mtz\n")
    proc = run_script("ml_phasing.evaluate", *shlex.split(command)[1:], "--dry-run", cwd=tmp_path)
    assert_clean_exit(proc)


def test_cli_basics(data):
    assert_clean_exit(run_script("ml_phasing.evaluate", "--show-defaults", cwd=data))
    proc = run_script("ml_phasing.evaluate", cwd=data)
    assert_clean_exit(proc)
    assert re.search(r"Examples:", proc.stdout)


# -- issue 13: positional files, many pairs, H removal, common resolution -----------------


def test_positional_files_reference_first(data):
    _, res = evaluate(data, "sim/examples/example_00000.mtz", "shifted.mtz", "--overwrite", "output.prefix=pos")
    r = res["predictions"][0]
    assert (r["reference"], r["prediction"]) == ("sim/examples/example_00000.mtz", "shifted.mtz")
    assert r["phases"]["overall"]["mean_phase_error"] < 0.01
    _, res = evaluate(data, "shifted.mtz", "sim/examples/example_00000.mtz", "--overwrite", "output.prefix=pos")
    r = res["predictions"][0]
    assert (r["reference"], r["prediction"]) == ("shifted.mtz", "sim/examples/example_00000.mtz")


def test_positional_files_conflicts_and_counts(data):
    """Files on the command line are the reference, then the predictions, also beside file
    keywords (the parser keeps them apart from the files the keywords name)."""
    ref = "sim/examples/example_00000.mtz"

    def sorry(*args):
        proc = run_script("ml_phasing.evaluate", *args, "--overwrite", "output.prefix=bad", cwd=data)
        assert_clean_exit(proc, 1)
        return proc.stderr

    assert "Two references" in sorry(ref, "shifted.mtz", "reference.file=random.mtz")
    (data / "list.txt").write_text(f"{ref} shifted.mtz\n")
    assert "Too many inputs" in sorry(ref, "shifted.mtz", "pairs=list.txt")
    err = sorry(ref)
    assert "No prediction" in err and "truth.mtz prediction.mtz" in err, err
    # the same reference both ways is fine, and a file on the command line beside prediction.file=
    _, res = evaluate(data, ref, "shifted.mtz", f"reference.file={ref}", "--overwrite", "output.prefix=same")
    assert res["predictions"][0]["prediction"] == "shifted.mtz"
    _, res = evaluate(data, ref, "prediction.file=shifted.mtz", "--overwrite", "output.prefix=kw")
    assert (res["predictions"][0]["reference"], res["predictions"][0]["prediction"]) == (ref, "shifted.mtz")
    # a parameter file on the command line is not a data file (CCP4i2 runs "program working.phil")
    (data / "params.eff").write_text("output.plots = False\n")
    _, res = evaluate(data, "params.eff", ref, "shifted.mtz", "--overwrite", "output.prefix=eff")
    assert (res["predictions"][0]["reference"], res["predictions"][0]["prediction"]) == (ref, "shifted.mtz")


def test_pairs_by_name_with_unpaired_files(data):
    import shutil

    ex = data / "sim" / "examples"
    refs, preds = data / "refs", data / "preds"
    refs.mkdir(exist_ok=True)
    preds.mkdir(exist_ok=True)
    for n in ("00000", "00001", "00002"):
        shutil.copy(ex / "example_00000.mtz", refs / f"example_{n}.mtz")
    shutil.copy(ex / "example_00000_density.ccp4", refs / "example_00000_density.ccp4")  # not *.mtz
    shutil.copy(data / "shifted.mtz", preds / "example_00000_p2d.mtz")
    shutil.copy(data / "random.mtz", preds / "example_00001_solve.mtz")
    shutil.copy(data / "shifted.mtz", preds / "example_000012_p2d.mtz")  # 000012 is not 00001 + separator
    proc, res = evaluate(data, "reference.file=refs", "prediction.file=preds", "--overwrite", "output.prefix=named")
    pairs = [(r["reference"], r["prediction"]) for r in res["predictions"]]
    assert pairs == [
        ("refs/example_00000.mtz", "preds/example_00000_p2d.mtz"),
        ("refs/example_00001.mtz", "preds/example_00001_solve.mtz"),
    ]
    assert res["unpaired"] == {
        "references": ["refs/example_00002.mtz"],
        "predictions": ["preds/example_000012_p2d.mtz"],
    }
    assert (
        "Unpaired: 1 prediction(s) with no reference" in proc.stdout and "preds/example_000012_p2d.mtz" in proc.stdout
    )
    errors = [r["phases"]["overall"]["mean_phase_error"] for r in res["predictions"]]
    assert errors[0] < 0.01 and 75 < errors[1] < 95
    assert res["summary"]["mean_phase_error"]["median"] == pytest.approx(np.median(errors))
    rows = (data / "named_pairs.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[0].startswith("reference,prediction,") and "example_00001_solve" in rows[2]


def test_pairs_from_list_file(data):
    (data / "lists").mkdir(exist_ok=True)
    (data / "lists" / "pairs.txt").write_text(
        "# reference  prediction\n"
        "../sim/examples/example_00000.mtz ../shifted.mtz   # the truth, moved\n"
        "\n"
        "../sim/examples/example_00000.mtz ../random.mtz\n"
    )
    _, res = evaluate(data, "pairs=lists/pairs.txt", "--overwrite", "output.prefix=listed")
    assert [r["prediction"].split("/")[-1] for r in res["predictions"]] == ["shifted.mtz", "random.mtz"]
    assert res["summary"]["n_predictions"] == 2 and res["summary"]["n_references"] == 1
    (data / "lists" / "bad.txt").write_text("../shifted.mtz\n")
    proc = run_script("ml_phasing.evaluate", "pairs=lists/bad.txt", "output.prefix=bad", cwd=data)
    assert_clean_exit(proc, 1)
    assert "line 1: expected two paths" in proc.stderr


@pytest.fixture(scope="module")
def model_with_h(data):
    """The model of example 0 with one H atom 1 A from each atom."""
    from cctbx import xray
    from cctbx.array_family import flex

    from ml_phasing.sources.structure_files import read_structure

    xs = read_structure(str(data / "sim" / "examples" / "example_00000.cif"))
    n = xs.scatterers().size()
    uc = xs.unit_cell()
    extra = flex.xray_scatterer()
    for i, sc in enumerate(xs.scatterers()):
        cart = np.array(uc.orthogonalize(sc.site)) + np.array([0.0, 0.0, 1.0])
        extra.append(xray.scatterer(label=f"H{i}", site=uc.fractionalize(tuple(cart)), u=0.03, scattering_type="H"))
    with_h = xs.deep_copy_scatterers()
    with_h.add_scatterers(extra)
    (data / "model_h.pdb").write_text(with_h.as_pdb_file())
    return n


def test_hydrogens_removed_from_model_reference(data, model_with_h):
    n = model_with_h
    common = ("reference.file=model_h.pdb", "prediction.file=sim/examples/example_00000_density.ccp4", "--overwrite")
    proc, res = evaluate(data, *common, "output.prefix=noh", "output.plots=False")
    r = res["predictions"][0]
    assert f"{n} H/D atoms removed from the model" in proc.stdout
    assert r["n_hydrogens_removed"] == n and r["atoms"]["n_true"] == n
    assert r["phases"]["overall"]["mean_phase_error"] < 1
    proc, res = evaluate(data, *common, "reference.remove_hydrogens=False", "output.prefix=withh", "output.plots=False")
    kept = res["predictions"][0]
    assert kept["atoms"]["n_true"] == 2 * n and "n_hydrogens_removed" not in kept
    assert kept["atoms"]["fraction_matched"] < r["atoms"]["fraction_matched"]
    assert kept["phases"]["overall"]["mean_phase_error"] > r["phases"]["overall"]["mean_phase_error"] + 1


def test_common_resolution_cut_and_truth_against_itself(data):
    """A 1.0 A prediction computed from the true model against the truth at lower resolution
    (the map, and the MTZ whose reflections are listed in another order) reads ~0 degrees."""
    from ml_phasing.io.map_io import write_mtz
    from ml_phasing.sources.structure_files import read_structure

    xs = read_structure(str(data / "sim" / "examples" / "example_00000.cif"))
    write_mtz(str(data / "fine.mtz"), [(xs.structure_factors(d_min=1.0).f_calc(), "FWT")], rename={"PHIFWT": "PHWT"})
    for reference in ("example_00000_density.ccp4", "example_00000.mtz"):
        proc, res = evaluate(
            data, f"sim/examples/{reference}", "fine.mtz", "--overwrite", "output.prefix=cut", "output.plots=False"
        )
        r = res["predictions"][0]
        assert r["phases"]["overall"]["mean_phase_error"] < 1, reference
        assert r["d_min"] > 1.19
        assert re.search(
            r"Note: the reference extends to 1\.\d\d A and the prediction to 1\.00 A: both are cut", proc.stdout
        )


def test_pair_result_is_typed_and_writes_the_same_json():
    """evaluate() returns a PairResult (issue 14): typed sections, maps kept out of the JSON,
    and as_dict() gives back exactly the dict the programs wrote before."""
    from ml_phasing.metrics.evaluation import AmplitudeScores, PairResult

    d = {
        "prediction": "p.mtz",
        "prediction_kind": "complex",
        "reference": "t.mtz",
        "reference_kind": "mtz",
        "notes": [],
        "n_common": 10,
        "d_min": 1.5,
        "d_max": 9.0,
        "phases": {"overall": {"mean_phase_error": 12.0}},
        "amplitudes": {"r_factor": 0.2, "scale_fitted": False, "restricted_to_predicted": False, "n": 10, "shells": []},
        "map_cc": 0.9,
        "inverted_hand": False,  # a map-against-map figure: kept beside the typed ones
        "_": {"ref_map": np.zeros(3)},
    }
    pair = PairResult.from_dict(d)
    assert isinstance(pair.amplitudes, AmplitudeScores) and pair.amplitudes.r_factor == 0.2
    assert set(pair.maps) == {"ref_map"} and pair.map_comparison == {"inverted_hand": False}
    expected = {k: v for k, v in d.items() if k != "_"}
    assert pair.as_dict() == expected
    json.dumps(pair.as_dict())
