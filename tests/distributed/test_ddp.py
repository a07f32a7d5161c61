"""DistributedDataParallel on 2 MPI ranks against one process on the same global batch.

One `mpiexec -n 2` launch of ddp_worker.py runs every scenario (a launch costs seconds);
rank 0 saves what each test compares here with a single-process run of the same model,
data and loop (imported from the worker, so both sides compute the same thing).
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import tensorgrad as tg

HERE = Path(__file__).resolve().parent
WORKER = HERE / "ddp_worker.py"
REL = 1e-10


def _load_worker():
    spec = importlib.util.spec_from_file_location("ddp_worker", WORKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


W = _load_worker()


def _mpi_missing():
    if shutil.which("mpiexec") is None:
        return "mpiexec is not on PATH: pip install -e .[distributed] (Open MPI wheel)"
    if importlib.util.find_spec("mpi4py") is None:
        return "mpi4py is not installed: pip install -e .[distributed]"
    return None


def mpi_env():
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if hasattr(os, "geteuid") and os.geteuid() == 0:   # Open MPI refuses root unless told
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    return env


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    reason = _mpi_missing()
    if reason:
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("ddp")
    cmd = ["mpiexec", "--oversubscribe", "-n", "2", sys.executable, str(WORKER), str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=mpi_env())
    done = out / "done.json"
    if proc.returncode != 0 or not done.exists():
        pytest.fail(f"the DDP worker failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n"
                    f"{proc.stderr[-5000:]}")
    info = json.loads(done.read_text())
    assert info["world"] == 2
    return out, info


def saved(results, name):
    return tg.load(results[0] / f"{name}.safetensors")


def assert_close(got, want, rel=REL, prefix=""):
    for name, w in want.items():
        g = got[prefix + name]
        err = (g - w).abs().max().item() / max(w.abs().max().item(), 1e-300)
        assert err <= rel, f"{name}: relative difference {err:.3g} > {rel:g}"


def single_process(kind, steps=W.STEPS, opt="sgd"):
    model = W.build(kind)
    x, y = W.data(kind)
    W.train(model, W.make_opt(model.parameters(), opt), x, y, steps)
    return W.params_of(model)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_ddp_matches_one_process_on_the_global_batch(results, kind):
    assert results[1][kind]["spread"] == 0.0, "the ranks' parameters differ"
    want = single_process(kind)
    start = W.params_of(W.build(kind))
    assert any((want[n] - start[n]).abs().max().item() > 1e-3 for n in want)  # it trained
    assert_close(saved(results, kind), want)


def test_ddp_on_a_device_off_the_host_matches_one_process(results):
    # Model, data and buckets on the "alt" test backend: each allreduce goes through a host
    # copy and back, as GPU tensors do with backend="mpi" (the GPU itself is not needed).
    info = results[1]["mlp_alt"]
    assert info["spread"] == 0.0 and info["bucket_devices"] == ["alt:0"]
    assert_close(saved(results, "mlp_alt"), single_process("mlp"))


def test_no_sync_accumulates_locally_then_averages_the_sum(results):
    assert results[1]["no_sync"]["local_spread"] > 1e-6, "no_sync still averaged gradients"
    model = W.build("mlp")
    x, y = W.data("mlp")
    W.train_accumulating(model, W.make_opt(model.parameters()), x, y, 3, 3)
    assert_close(saved(results, "no_sync"), W.params_of(model))


def test_small_buckets_post_the_first_allreduce_before_backward_ends(results):
    info = results[1]["buckets"]
    buckets, events = info["buckets"], info["events"]
    assert len(buckets) >= 2
    assert buckets[0][:2] == ["4.bias", "4.weight"]  # reverse parameter order
    posts = [i for i, e in enumerate(events) if e[0] == "post"]
    assert [events[i][1] for i in posts] == info["bucket_numels"]  # in bucket order, once each
    assert all(events[i][2] for i in posts), "a bucket was reduced with a blocking call"
    later = {n for names in buckets[1:] for n in names}
    later_grads = [i for i, e in enumerate(events) if e[0] == "grad" and e[1] in later]
    assert posts[0] < later_grads[0], f"bucket 0 waited for later buckets' gradients: {events}"
    assert ["poll"] in events[posts[0]:later_grads[-1]], "no hook polled bucket 0's request"
    assert posts[0] < events.index(["layer 0 output grad"]), \
        f"bucket 0 was posted only after backward reached layer 0: {events}"
    assert events[-1] == ["backward returned"] and posts[-1] < len(events) - 1
    model = W.build("mlp")
    x, y = W.data("mlp")
    xb, yb = W.batch(x, y, 0)
    tg.nn.functional.cross_entropy(model(xb), yb).backward()
    assert_close(saved(results, "buckets"), {n: p.grad for n, p in model.named_parameters()})


def test_checkpoint_by_rank_0_resumes_exactly(results):
    assert results[1]["checkpoint"]["spread"] == 0.0
    got = saved(results, "checkpoint")
    straight = {k[len("straight."):]: v for k, v in got.items() if k.startswith("straight.")}
    assert straight
    assert_close(got, straight, rel=0.0, prefix="resumed.")
    assert_close(straight, single_process("mlp", opt="adam"), rel=1e-8)


def test_unused_parameter_is_reported_by_name(results):
    err = results[1]["unused_default"]["error"]
    assert err is not None, "a forward after an incomplete backward did not raise"
    assert "extra.weight" in err and "extra.bias" in err
    assert "find_unused_parameters=True" in err


def test_find_unused_parameters(results):
    info = results[1]["unused_found"]
    assert info["never_used_grad_none"], "a parameter no rank used got a gradient"
    assert info["all_ranks_have_grad"] and info["rank0_only_spread"] == 0.0
    want = single_process("extra", steps=3)
    assert_close(saved(results, "unused_found"), want)


def test_ddp_needs_a_process_group():
    dist = pytest.importorskip("tensorgrad.distributed")
    if dist.is_initialized():
        pytest.skip("this process already joined a process group")
    with pytest.raises(RuntimeError, match="init_process_group"):
        tg.nn.parallel.DistributedDataParallel(tg.nn.Linear(2, 2))
