"""Every collective of tg.distributed, run by `mpiexec -n 2` on workers/collectives.py, against
the same reduction done here with NumPy on the same per-rank inputs.

The GPU variants (MPI with staged copies, NCCL) skip with the reason where CUDA is unusable;
the staged path also runs on the CPU, with the test suite's second backend ("alt").
"""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import tensorgrad as tg

_spec = importlib.util.spec_from_file_location(
    "collectives_worker", Path(__file__).resolve().parent / "workers" / "collectives.py")
worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(worker)

REDUCE = {"SUM": lambda a: a.sum(0), "AVG": lambda a: a.mean(0), "PRODUCT": lambda a: a.prod(0),
          "MAX": lambda a: a.max(0), "MIN": lambda a: a.min(0)}


def _inputs(world):
    """(world, 2, 3): rank r's input at [r]."""
    return np.array([worker.rank_values(r) for r in range(world)], dtype=np.float64)


def _launch(mpirun, tmp_path, backend, device, n):
    run = mpirun("collectives.py", tmp_path, backend, device, n=n, timeout=60)
    assert run.returncode == 0, f"the MPI job failed (exit {run.returncode}):\n{run.output}"
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(n)]
    assert [r["rank"] for r in results] == list(range(n))
    return results


def _check(results, backend):
    world = len(results)
    x = _inputs(world)
    for res in results:
        rank = res["rank"]
        assert res["world"] == world and res["backend"] == backend and res["initialized"]
        for name, reduce in REDUCE.items():
            np.testing.assert_array_equal(res[f"all_reduce_{name}"], reduce(x), err_msg=name)
            np.testing.assert_array_equal(res[f"all_reduce_async_{name}"],
                                          reduce(x.astype(np.float32)), err_msg=name)
        for dtype in ("int64", "float16"):
            np.testing.assert_array_equal(res[f"all_reduce_{dtype}_SUM"], x.sum(0))
            np.testing.assert_array_equal(res[f"all_reduce_{dtype}_MAX"], x.max(0))
        assert res["all_reduce_bool_SUM"] == (x < 1.5).any(0).tolist()
        assert res["all_reduce_bool_PRODUCT"] == (x < 1.5).all(0).tolist()
        for mode in ("sync", "async"):
            np.testing.assert_array_equal(res[f"non_contiguous_{mode}_view"], x.sum(0))
            np.testing.assert_array_equal(res[f"non_contiguous_{mode}_base"], x.sum(0).T)
        np.testing.assert_array_equal(res["broadcast_from_1"], x[1 % world])
        assert res["broadcast_bumps_version"]
        np.testing.assert_array_equal(res["broadcast_async_from_0"], x[0])
        np.testing.assert_array_equal(res["broadcast_parameter"], x[0])
        assert res["broadcast_parameter_is_leaf"]
        np.testing.assert_array_equal(res["all_gather"], x)
        np.testing.assert_array_equal(res["all_gather_async_int64"], x)
        scaled = x * (rank + 1)            # every rank's input number `rank`
        for name in ("SUM", "AVG", "MAX"):
            np.testing.assert_array_equal(res[f"reduce_scatter_{name}"], REDUCE[name](scaled))
        assert res["barrier_waited"]
        assert not res["initialized_after_destroy"]
        assert "not been initialized" in res["error_after_destroy"]


def _check_sampler(results):
    """DistributedSampler with its defaults from the group: the shards cover the dataset and
    are what an explicitly configured sampler gives for that rank and epoch."""
    world = len(results)
    for epoch in (0, 5):
        shards = [res[f"sampler_epoch{epoch}"] for res in results]
        assert set(sum(shards, [])) == set(range(11))
        assert [len(s) for s in shards] == [res["sampler_len"] for res in results] == [6] * world
        for rank, shard in enumerate(shards):
            local = tg.data.DistributedSampler(range(11), num_replicas=world, rank=rank, seed=3)
            local.set_epoch(epoch)
            assert shard == list(local)
    assert results[0]["sampler_epoch0"] != results[0]["sampler_epoch5"]


def test_collectives_mpi_cpu(mpirun, tmp_path):
    results = _launch(mpirun, tmp_path, "mpi", "cpu", n=2)
    _check(results, "mpi")
    _check_sampler(results)


def test_collectives_mpi_staged_through_host_buffers(mpirun, tmp_path):
    # The "alt" test backend copies on to_numpy, as a GPU does: every collective goes through a
    # host copy and back, the path GPU tensors take with backend="mpi", here without a GPU.
    results = _launch(mpirun, tmp_path, "mpi", "alt", n=2)
    _check(results, "mpi")
    assert all(res["alt_contexts_entered"] > 0 for res in results)


def _gpus_or_skip():
    if not tg.cuda.is_available():
        pytest.skip(f"CUDA is not usable here: {tg.cuda.why_unavailable()}")
    return tg.cuda.device_count()


def test_collectives_mpi_staged_from_gpu(mpirun, tmp_path):
    n = min(2, _gpus_or_skip())
    _check(_launch(mpirun, tmp_path, "mpi", "cuda", n=n), "mpi")


def test_collectives_nccl(mpirun, tmp_path):
    n = min(2, _gpus_or_skip())
    _check(_launch(mpirun, tmp_path, "nccl", "cuda", n=n), "nccl")


def test_nccl_with_more_ranks_than_gpus_says_so(mpirun, tmp_path):
    n = _gpus_or_skip() + 1
    run = mpirun("collectives.py", tmp_path, "nccl", "cuda", n=n, timeout=60)
    assert run.returncode not in (0, None), run.output
    assert "needs one GPU per rank" in run.output and "rank(s) per node" in run.output
