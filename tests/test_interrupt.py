"""Ctrl-C with nproc=2 (issue 12): one line, exit 130, no worker tracebacks, no workers left,
nothing half-written. A terminal's Ctrl-C is a SIGINT to the whole process group, so the
test starts each program in a session of its own and signals the group."""

import glob
import os
import signal
import subprocess
import time

import pytest

from conftest import console_script


def _interrupt(args, log, ready, cwd, settle=1.5, timeout=120):
    proc = subprocess.Popen(
        [console_script(args[0]), *map(str, args[1:])],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + timeout
    while time.time() < deadline:  # wait until the parallel part has begun
        if os.path.exists(log) and ready in open(log).read():
            break
        if proc.poll() is not None:
            pytest.fail(f"finished before it could be interrupted: {proc.stderr.read()[-2000:]}")
        time.sleep(0.2)
    time.sleep(settle)
    t0 = time.time()
    os.killpg(proc.pid, signal.SIGINT)
    try:
        err = proc.communicate(timeout=60)[1]
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("the run hung after Ctrl-C")
    seconds = time.time() - t0
    time.sleep(0.5)
    left = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True).stdout.split()
    return proc.returncode, err, seconds, left


@pytest.mark.parametrize("program", ["simulate", "solve"])
def test_ctrl_c_with_two_workers_stops_at_once_and_cleanly(program, tmp_path):
    if program == "simulate":
        args = ["ml_phasing.simulate", "n_examples=100000", "nproc=2", "output.directory=sim"]
        log, ready = tmp_path / "sim" / "simulate.log", "Generating"
    else:
        # random P21 data at 1.2 A with no model for the cell: ab initio starts, some made in the
        # parent (P1 dual space, seconds each), the rest in two workers
        made = subprocess.run(
            [
                console_script("ml_phasing.simulate"),
                "n_examples=1",
                "write_examples=1",
                "d_min_low=1.2",
                "d_min_high=1.2",
                "random_atoms.space_groups=P21",
                "random_seed=5",
                "output.directory=data",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        assert made.returncode == 0, made.stderr
        args = [
            "ml_phasing.solve",
            "data/examples/example_00000.mtz",
            "nproc=2",
            "engine.stop_when_solved=False",
            "engine.max_starts=200",
            "output.prefix=run",
        ]
        log, ready = tmp_path / "run.log", "start   1"
    status, err, seconds, left = _interrupt(args, str(log), ready, tmp_path)
    assert status == 130, err[-2000:]
    assert err.strip().splitlines() == ["Interrupted: rerun the same command to resume."], err[-2000:]
    assert seconds < 10, seconds
    assert left == [], "workers left behind"
    assert not glob.glob(str(tmp_path / "**" / ".*partial*"), recursive=True)
    assert not glob.glob(str(tmp_path / "**" / "*.lock"), recursive=True)
