"""The process group's life cycle and its errors: collectives before init_process_group, a
missing mpi4py, NCCL without GPUs, and a rank that raises mid-step (the job must abort, not
hang).

The in-process tests never start MPI here (pytest stays a plain process): each fails before
mpi4py is imported.
"""

import sys

import pytest

import tensorgrad as tg
import tensorgrad.distributed as dist

CALLS = {
    "all_reduce": lambda: dist.all_reduce(tg.ones(3)),
    "broadcast": lambda: dist.broadcast(tg.ones(3), src=0),
    "all_gather": lambda: dist.all_gather([tg.ones(3)], tg.ones(3)),
    "reduce_scatter": lambda: dist.reduce_scatter(tg.ones(3), [tg.ones(3)]),
    "barrier": lambda: dist.barrier(),
    "get_rank": lambda: dist.get_rank(),
    "get_world_size": lambda: dist.get_world_size(),
    "destroy_process_group": lambda: dist.destroy_process_group(),
}


@pytest.mark.parametrize("name", list(CALLS))
def test_calls_before_init_process_group_say_so(name):
    assert not dist.is_initialized()
    with pytest.raises(dist.DistributedError, match="not been initialized") as info:
        CALLS[name]()
    assert isinstance(info.value, RuntimeError) and isinstance(info.value, tg.TensorGradError)
    assert str(info.value).startswith(f"{name}:")
    assert "init_process_group" in str(info.value)


def test_reduce_op_has_torch_names():
    assert {op.name for op in dist.ReduceOp} >= {"SUM", "AVG", "MAX", "MIN"}
    assert repr(dist.ReduceOp.AVG) == "ReduceOp.AVG"


def test_missing_mpi4py_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # makes `from mpi4py import MPI` fail
    hook = sys.excepthook
    with pytest.raises(ImportError, match=r"pip install -e \.\[distributed\]"):
        dist.init_process_group("mpi")
    assert not dist.is_initialized() and sys.excepthook is hook


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="unknown backend 'gloo'.*'mpi', 'nccl'"):
        dist.init_process_group("gloo")
    assert not dist.is_initialized()


def test_nccl_without_a_gpu_says_what_is_wrong():
    if tg.cuda.is_available():
        pytest.skip("a GPU is usable here; test_collectives.py runs the NCCL backend instead")
    with pytest.raises(dist.DistributedError, match="backend='nccl' needs a CUDA GPU") as info:
        dist.init_process_group("nccl")
    assert tg.cuda.why_unavailable() in str(info.value)
    assert "backend='mpi'" in str(info.value)
    assert not dist.is_initialized()


def test_a_rank_raising_mid_step_aborts_the_job(mpirun):
    run = mpirun("raise_mid_step.py", n=2, timeout=30)
    assert run.returncode is not None, (f"the job hung (killed after {run.seconds:.0f} s): the "
                                        f"other rank waited forever\n{run.output}")
    assert run.returncode != 0, run.output
    assert "Traceback (most recent call last)" in run.output
    assert "in train_step" in run.output
    assert "ValueError: deliberate failure on rank 1 at step 2" in run.output
    assert "rank 1 raised an uncaught ValueError" in run.output
