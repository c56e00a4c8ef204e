"""Issue 15: the fixed split of benchmarks/finetune_extension.py and its fine-tuning recipe agree."""

import boost_adaptbx.boost.python  # noqa: F401
import torch  # noqa: F401

import glob
import importlib.util
import os

HERE = os.path.dirname(os.path.abspath(__file__))
BENCHMARK = os.path.join(HERE, "..", "benchmarks", "finetune_extension.py")


def _benchmark():
    import sys

    sys.path.insert(0, os.path.dirname(BENCHMARK))  # it imports extend_resolution beside it
    try:
        spec = importlib.util.spec_from_file_location("finetune_extension", BENCHMARK)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(os.path.dirname(BENCHMARK))
    return module


def test_split_is_by_file_and_matches_the_recipe(realdata):
    from ml_phasing.models import model_file

    fe = _benchmark()
    config = model_file.read_model_file(model_file.resolve(fe.SHIPPED, "extend_resolution"))["task_config"]
    cif_dir = os.path.join(realdata, "cif")
    train, test, excluded = fe.split(cif_dir, config)
    assert train == fe.recipe_files(fe.SIMULATE_RECIPE)
    assert train and test and not set(train) & set(test)
    assert "COD_2242624_P-1_FeN4.cif" in excluded
    assert sorted(train + test + list(excluded)) == sorted(os.path.basename(p) for p in glob.glob(f"{cif_dir}/*.cif"))
    # the recipe's paths (relative to the repository root) name the files the rule chose
    root = os.path.join(HERE, "..")
    from libtbx import phil

    from ml_phasing.phil.simulate import phil_str

    params = phil.parse(phil_str, process_includes=True).fetch(phil.parse(file_name=fe.SIMULATE_RECIPE)).extract()
    for path in params.simulate.structures.file:
        assert os.path.samefile(os.path.join(root, path), os.path.join(cif_dir, os.path.basename(path)))
