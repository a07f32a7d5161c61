"""The "nccl" group's own logic, on the CPU: which GPU a rank takes, how ReduceOps and dtypes
map to NCCL's constants, the AVG fallback, the copy-back and version bump after a collective,
and the errors for tensors on the wrong device.

The real NCCL path needs CuPy, NCCL and GPUs, so it runs only on a lent GPU (test_collectives.py,
via `benchmarks/gpu_session.sh distributed`). Here everything only a GPU provides is faked in
the test: mpi4py's MPI module and communicators (SimpleNamespace / small classes), the
`cupy.cuda.nccl` module (constants, unique id, a communicator that records its calls and
computes what `world` ranks holding the same input would get), CuPy's `cp` (streams, events,
and NumPy arrays whose `.data.ptr` is their address), and the CUDA backend (`device_count`).
They go in through pytest's monkeypatch, so nothing outlives a test; no MPI is started.
"""

from types import SimpleNamespace

import numpy as np
import pytest

import tensorgrad as tg
from tensorgrad.distributed import DistributedError, ReduceOp
from tensorgrad.distributed import nccl as nccl_mod

NAMES = ["NCCL_SUM", "NCCL_PROD", "NCCL_MAX", "NCCL_MIN", "NCCL_AVG",
         *dict.fromkeys(nccl_mod._NCCL_TYPES.values())]


# ---- fakes ----------------------------------------------------------------------------------
class _Node:
    """The shared-memory sub-communicator Split_type returns."""

    def __init__(self, rank, size, fail=False):
        self.rank, self.size, self.fail, self.freed = rank, size, fail, 0

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        if self.fail:
            raise RuntimeError("MPI_Comm_size failed")
        return self.size

    def Free(self):
        self.freed += 1


class _Comm(_Node):
    """The group's communicator: its rank and size, the node split, the unique id's bcast."""

    def __init__(self, node, rank=0, size=1):
        super().__init__(rank, size)
        self.node, self.split_with, self.bcasts = node, [], []

    def Split_type(self, kind):
        self.split_with.append(kind)
        return self.node

    def bcast(self, obj, root):
        self.bcasts.append((obj, root))
        return obj


MPI = SimpleNamespace(COMM_TYPE_SHARED="shared", Get_processor_name=lambda: "node7")


class _DevArray(np.ndarray):
    """A NumPy array posing as a CuPy one: `.data.ptr` is its address; `_seen` maps it back."""

    _seen = {}

    @property
    def data(self):
        ptr = self.__array_interface__["data"][0]
        _DevArray._seen[ptr] = self
        return SimpleNamespace(ptr=ptr)


class _NcclComm:
    """Records every call; acts as `world` ranks that all hold this rank's input."""

    def __init__(self, world, uid, rank):
        self.world, self.uid, self.rank, self.calls = world, uid, rank, []

    def _reduce(self, x, op):
        return {"NCCL_SUM": x * self.world, "NCCL_PROD": x ** self.world}.get(op, x)

    def allReduce(self, send, recv, count, dtype, op, stream):
        self.calls.append(("allReduce", send == recv, count, dtype, op, stream))
        _DevArray._seen[recv][...] = self._reduce(_DevArray._seen[send], op)

    def bcast(self, buf, count, dtype, root, stream):
        self.calls.append(("bcast", count, dtype, root, stream))

    def allGather(self, send, recv, count, dtype, stream):
        self.calls.append(("allGather", count, dtype, stream))
        _DevArray._seen[recv][...] = _DevArray._seen[send]

    def reduceScatter(self, send, recv, count, dtype, op, stream):
        self.calls.append(("reduceScatter", count, dtype, op, stream))
        _DevArray._seen[recv][...] = self._reduce(_DevArray._seen[send][self.rank], op)


def _fake_nccl(version):
    return SimpleNamespace(**{n: n for n in NAMES}, get_version=lambda: version,
                           get_unique_id=lambda: ("uid",), NcclCommunicator=_NcclComm)


STREAM = SimpleNamespace(ptr=4242)
CP = SimpleNamespace(
    cuda=SimpleNamespace(Device=lambda i: SimpleNamespace(use=lambda: None),
                         get_current_stream=lambda: STREAM),
    empty=lambda shape, dtype: np.empty(shape, dtype).view(_DevArray),
    stack=lambda arrays: np.stack(arrays).view(_DevArray))


def _group(monkeypatch, version=21000, world=2, rank=0, gpus=4):
    """An NCCLGroup built by its real __init__ over the fakes: local rank 1 of 2, so GPU 1."""
    backend = SimpleNamespace(xp=CP, device_count=lambda: gpus)
    monkeypatch.setattr(nccl_mod, "_import_nccl", lambda: _fake_nccl(version))
    real = nccl_mod.backend_api  # patched in nccl's namespace only: tg.ones still runs on NumPy
    monkeypatch.setattr(nccl_mod, "backend_api", SimpleNamespace(
        usable_backend=lambda kind: backend, device_context=real.device_context))
    return nccl_mod.NCCLGroup(MPI, _Comm(_Node(1, 2), rank, world))


def _cuda_tensor(values, dtype="float64", index=1, transpose=False):
    """What the group reads of a CUDA tensor: device, _array (a fake device array), _vc."""
    arr = np.array(values, dtype=dtype).view(_DevArray)
    return SimpleNamespace(device=tg.device("cuda", index), _array=arr.T if transpose else arr,
                           _vc=[0])


@pytest.fixture(autouse=True)
def _forget_buffers():
    yield
    _DevArray._seen.clear()


# ---- _local_gpu -----------------------------------------------------------------------------
@pytest.mark.parametrize("local_rank, local_size, gpus", [(0, 1, 1), (2, 4, 4), (1, 2, 8)])
def test_local_gpu_is_the_rank_on_the_node(local_rank, local_size, gpus):
    node = _Node(local_rank, local_size)
    comm = _Comm(node)
    assert nccl_mod._local_gpu(MPI, comm, SimpleNamespace(device_count=lambda: gpus)) == local_rank
    assert comm.split_with == ["shared"] and node.freed == 1


def test_more_ranks_on_a_node_than_gpus_says_so():
    node = _Node(2, 3)
    with pytest.raises(DistributedError) as info:
        nccl_mod._local_gpu(MPI, _Comm(node), SimpleNamespace(device_count=lambda: 2))
    msg = str(info.value)
    assert "3 ranks share node 'node7'" in msg and "2 visible GPU(s)" in msg
    assert "at most 2 rank(s) per node" in msg and "ppr:2:node" in msg and node.freed == 1


def test_a_backend_without_device_count_counts_as_one_gpu():
    assert nccl_mod._local_gpu(MPI, _Comm(_Node(0, 1)), SimpleNamespace()) == 0
    with pytest.raises(DistributedError, match="at most 1 rank"):
        nccl_mod._local_gpu(MPI, _Comm(_Node(1, 2)), SimpleNamespace())


def test_the_node_communicator_is_freed_when_asking_it_fails():
    node = _Node(0, 1, fail=True)
    with pytest.raises(RuntimeError, match="MPI_Comm_size failed"):
        nccl_mod._local_gpu(MPI, _Comm(node), SimpleNamespace(device_count=lambda: 1))
    assert node.freed == 1


# ---- construction, ops and dtypes -------------------------------------------------------------
def test_init_takes_the_local_gpu_and_shares_rank_0s_unique_id(monkeypatch):
    g = _group(monkeypatch, world=3)
    assert (g.rank, g.world_size, g.device_index) == (0, 3, 1)
    assert g.comm.bcasts == [(("uid",), 0)] and g.nccl_comm.uid == ("uid",)
    assert (g.nccl_comm.world, g.nccl_comm.rank) == (3, 0)
    other = _group(monkeypatch, rank=1)
    assert other.comm.bcasts == [(None, 0)]  # only rank 0 makes the id


@pytest.mark.parametrize("op, const", [(ReduceOp.SUM, "NCCL_SUM"), (ReduceOp.PRODUCT, "NCCL_PROD"),
                                       (ReduceOp.MAX, "NCCL_MAX"), (ReduceOp.MIN, "NCCL_MIN")])
def test_reduce_ops_map_to_nccls(monkeypatch, op, const):
    assert _group(monkeypatch)._nccl_op(op, np.dtype("float32")) == (const, False)


def test_avg_is_native_from_nccl_2_10_else_a_sum_then_a_divide(monkeypatch):
    assert _group(monkeypatch, 21000)._nccl_op(ReduceOp.AVG, np.dtype("f4")) == ("NCCL_AVG", False)
    assert _group(monkeypatch, 20907)._nccl_op(ReduceOp.AVG, np.dtype("f4")) == ("NCCL_SUM", True)


def test_bool_sum_and_product_are_logical_or_and_and(monkeypatch):
    g, b = _group(monkeypatch), np.dtype(bool)
    assert g._nccl_op(ReduceOp.SUM, b) == ("NCCL_MAX", False)
    assert g._nccl_op(ReduceOp.PRODUCT, b) == ("NCCL_MIN", False)
    assert g._nccl_op(ReduceOp.MAX, b) == ("NCCL_MAX", False)
    assert g._nccl_op(ReduceOp.SUM, np.dtype("uint8")) == ("NCCL_SUM", False)


def test_every_supported_dtype_has_its_nccl_type(monkeypatch):
    g = _group(monkeypatch)
    got = {name: g._type(np.zeros(1, name)) for name in nccl_mod._NCCL_TYPES}
    assert got["bool"] == got["uint8"] == "NCCL_UINT8" and got["float16"] == "NCCL_FLOAT16"
    assert all(got[name] == "NCCL_" + name.upper() for name in got if name != "bool")


def test_an_unsupported_dtype_lists_the_supported_ones(monkeypatch):
    with pytest.raises(DistributedError, match="cannot transfer complex64") as info:
        _group(monkeypatch)._type(np.zeros(1, np.complex64))
    assert "float16, float32, float64, int8, uint8" in str(info.value)


# ---- _finish and _on_device -------------------------------------------------------------------
def test_finish_divides_only_when_told_and_bumps_the_version(monkeypatch):
    g, t = _group(monkeypatch, world=4), tg.tensor([4.0, 8.0])
    g._finish(t, t._array, t._array, False)
    assert t.tolist() == [4.0, 8.0] and t._vc[0] == 1
    g._finish(t, t._array, t._array, True)
    assert t.tolist() == [1.0, 2.0] and t._vc[0] == 2


def test_finish_copies_a_contiguous_buffer_back_into_a_view(monkeypatch):
    g = _group(monkeypatch, world=2)
    base = tg.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    view = base.T
    assert not view._array.flags.c_contiguous
    buf = np.ascontiguousarray(view._array) * 10
    g._finish(view, view._array, buf, True)
    assert base.tolist() == [[5.0, 10.0, 15.0], [20.0, 25.0, 30.0]] and view._vc[0] == 1


def test_a_cpu_tensor_is_refused_with_a_hint(monkeypatch):
    with pytest.raises(DistributedError) as info:
        _group(monkeypatch)._on_device(tg.ones(2), "all_reduce")
    msg = str(info.value)
    assert msg.startswith("all_reduce: backend='nccl' works on CUDA tensors, got one on cpu")
    assert ".to('cuda:1')" in msg


def test_a_tensor_on_another_gpu_is_refused_naming_both(monkeypatch):
    with pytest.raises(DistributedError) as info:
        _group(monkeypatch)._on_device(_cuda_tensor([1.0], index=None), "broadcast")
    msg = str(info.value)
    assert msg.startswith("broadcast: this rank's NCCL communicator drives cuda:1")
    assert "the tensor is on cuda\n" in msg and "on 'cuda:1'" in msg


# ---- one rank's collectives end to end, over the recording communicator ------------------------
def test_all_reduce_avg_without_native_support_sums_then_divides(monkeypatch):
    g = _group(monkeypatch, version=20800, world=4)
    t = _cuda_tensor([[1.0, 2.0], [3.0, 4.0]], transpose=True)
    assert g.all_reduce(t, ReduceOp.AVG, False) is None
    assert g.nccl_comm.calls == [("allReduce", True, 4, "NCCL_FLOAT64", "NCCL_SUM", 4242)]
    assert t._array.tolist() == [[1.0, 3.0], [2.0, 4.0]] and t._vc == [1]
    g.all_reduce(t, ReduceOp.SUM, False)  # the sum lands in the transposed view, not just a copy
    assert t._array.tolist() == [[4.0, 12.0], [8.0, 16.0]] and t._vc == [2]


def test_bool_all_reduce_broadcast_gather_and_scatter_pass_nccl_the_right_arguments(monkeypatch):
    g = _group(monkeypatch, version=20800, world=2)
    flags = _cuda_tensor([True, False, True], dtype=bool)
    g.all_reduce(flags, ReduceOp.SUM, False)
    assert g.nccl_comm.calls[-1] == ("allReduce", True, 3, "NCCL_UINT8", "NCCL_MAX", 4242)
    assert flags._array.tolist() == [True, False, True]
    g.broadcast(_cuda_tensor([1, 2], dtype="int32"), 1, False)
    assert g.nccl_comm.calls[-1] == ("bcast", 2, "NCCL_INT32", 1, 4242)
    outs = [_cuda_tensor([0.0, 0.0], dtype="float32") for _ in range(2)]
    g.all_gather(outs, _cuda_tensor([5.0, 6.0], dtype="float32"), False)
    assert g.nccl_comm.calls[-1] == ("allGather", 2, "NCCL_FLOAT32", 4242)
    assert [o._array.tolist() for o in outs] == [[5.0, 6.0]] * 2 and outs[1]._vc == [1]
    out = _cuda_tensor([0.0, 0.0])
    g.reduce_scatter(out, [_cuda_tensor([1.0, 2.0]), _cuda_tensor([3.0, 4.0])], ReduceOp.AVG, False)
    assert g.nccl_comm.calls[-1] == ("reduceScatter", 2, "NCCL_FLOAT64", "NCCL_SUM", 4242)
    assert out._array.tolist() == [1.0, 2.0] and out._vc == [1]  # rank 0's row, summed, halved
