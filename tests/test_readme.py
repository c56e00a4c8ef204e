"""The README's commands: the main job runs as written, and CI runs the README's install and test lines."""

import os
import re
import shlex
import subprocess

from conftest import assert_clean_exit, run_console_script as run_script

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def readme():
    return open(os.path.join(ROOT, "README.md")).read()


def test_main_job_commands_run(tmp_path):
    text = readme()
    block = text[text.index("## The main job") : text.index("## Programs")]
    commands = [ln.strip() for ln in re.findall(r"```\n(.*?)```", block, re.S)[0].splitlines() if ln.strip()]
    commands += [ln.strip() for ln in re.findall(r"```\n(.*?)```", block, re.S)[1].splitlines() if ln.strip()]
    assert commands[0].startswith("ml_phasing.simulate") and commands[1].startswith("ml_phasing.solve")
    for command in commands:
        words = shlex.split(command)
        assert_clean_exit(run_script(words[0], *words[1:], cwd=tmp_path))
    assert (tmp_path / "example_00000_solve.mtz").exists() and (tmp_path / "evaluate.json").exists()
    import json

    assert json.loads((tmp_path / "example_00000_solve.json").read_text())["solved"] is True
    phases = json.loads((tmp_path / "evaluate.json").read_text())["predictions"][0]["phases"]
    assert phases["overall"]["mean_phase_error"] < 15


def test_ci_runs_the_readme_commands():
    ci = open(os.path.join(ROOT, ".ci", "run")).read()
    assert "<!-- ci:install -->" in ci and "<!-- ci:test -->" in ci
    text = readme()
    for marker in ("<!-- ci:install -->", "<!-- ci:test -->"):
        assert marker in text
    out = subprocess.run(
        [
            "bash",
            "-c",
            f"cd {ROOT} && source <(sed -n '/^extract()/,/^}}/p' .ci/run) && "
            "extract '<!-- ci:install -->' && extract '<!-- ci:test -->'",
        ],
        capture_output=True,
        text=True,
    )
    lines = out.stdout.strip().splitlines()
    assert lines == [
        'python -m pip install torch==2.13.0 -e ".[test]"',
        "python -m ruff check . && python -m pytest -q",
    ], out.stderr
