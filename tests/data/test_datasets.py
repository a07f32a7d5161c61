"""tg.data.datasets: load_digits, the MNIST/FashionMNIST IDX readers and their verified
download (against a local HTTP server on 127.0.0.1), and tg.frombuffer under them."""

import functools
import gzip
import hashlib
import http.server
import struct
import sys
import threading

import pytest

import tensorgrad as tg
from tensorgrad.data import DataLoader
from tensorgrad.data.datasets import MNIST, FashionMNIST, load_digits, read_idx


# ---- frombuffer ----------------------------------------------------------------------------
def test_frombuffer_reads_bytes_as_a_cpu_tensor_sharing_memory():
    buf = bytearray(struct.pack("<3i", 1, -2, 300))
    t = tg.frombuffer(buf, dtype=tg.int32)
    assert t.tolist() == [1, -2, 300] and t.dtype == tg.int32 and t.device == tg.device("cpu")
    buf[0:4] = struct.pack("<i", 7)
    assert t[0].item() == 7  # shares the buffer, as torch.frombuffer
    assert tg.frombuffer(buf, dtype=tg.int32, count=1, offset=4).tolist() == [-2]
    with pytest.raises(ValueError):
        tg.frombuffer(bytearray(5), dtype=tg.int32)


# ---- load_digits ---------------------------------------------------------------------------
def test_load_digits_shapes_dtypes_ranges():
    train, test = load_digits()
    (xtr, ytr), (xte, yte) = train.tensors, test.tensors
    assert xtr.shape == (1437, 64) and xte.shape == (360, 64)
    assert xtr.dtype == tg.float32 and ytr.dtype == tg.int64
    assert float(xtr.min()) == 0.0 and float(xtr.max()) == 1.0 and float(xte.max()) <= 1.0
    assert sorted(set(ytr.tolist())) == list(range(10)) == sorted(set(yte.tolist()))


def test_load_digits_split_is_stratified_and_a_partition():
    train, test = load_digits(test_size=0.25, seed=3)
    labels = train.tensors[1].tolist() + test.tensors[1].tolist()
    assert len(labels) == 1797 and len(test) == 450  # ceil(0.25 * 1797)
    for c in range(10):
        share = labels.count(c) * 450 / 1797
        assert abs(test.tensors[1].tolist().count(c) - share) < 1
    rows = {tuple(r) for r in train.tensors[0].tolist()} | {tuple(r) for r in
                                                           test.tensors[0].tolist()}
    from sklearn.datasets import load_digits as sk
    assert rows == {tuple(v / 16 for v in r) for r in sk().data.tolist()}


def test_load_digits_is_deterministic_by_seed():
    a, b, c = load_digits(seed=0)[1], load_digits(seed=0)[1], load_digits(seed=1)[1]
    assert a.tensors[1].tolist() == b.tensors[1].tolist()
    assert a.tensors[0].tolist() == b.tensors[0].tolist()
    assert a.tensors[1].tolist() != c.tensors[1].tolist()
    tg.manual_seed(123)  # the global seed plays no part
    assert load_digits(seed=0)[1].tensors[1].tolist() == a.tensors[1].tolist()


def test_load_digits_test_size_as_count_and_bad_values():
    assert len(load_digits(test_size=100)[1]) == 100
    for bad in (0.0, 1.0, 0, 1797, "0.2"):
        with pytest.raises(ValueError, match="test_size"):
            load_digits(test_size=bad)


def test_load_digits_without_sklearn_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"pip install -e \.\[examples\]"):
        load_digits()


# ---- IDX fixtures --------------------------------------------------------------------------
def idx_bytes(values, shape):
    return struct.pack(">BBBB", 0, 0, 8, len(shape)) + struct.pack(f">{len(shape)}I", *shape) \
        + bytes(values)


def images_bytes(n, rows=28, cols=28):
    return idx_bytes([(i * 7 + k) % 256 for i in range(n) for k in range(rows * cols)],
                     (n, rows, cols))


def labels_bytes(n):
    return idx_bytes([(3 * i) % 10 for i in range(n)], (n,))


def write_split(folder, prefix, n, compress=False):
    folder.mkdir(parents=True, exist_ok=True)
    for kind, data in (("images-idx3", images_bytes(n)), ("labels-idx1", labels_bytes(n))):
        name = f"{prefix}-{kind}-ubyte"
        if compress:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)


@pytest.mark.parametrize("layout", ["torchvision", "flat"])
@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
def test_mnist_reads_idx_files(tmp_path, layout, compress):
    folder = tmp_path / "MNIST" / "raw" if layout == "torchvision" else tmp_path
    write_split(folder, "train", 5, compress)
    write_split(folder, "t10k", 3, compress)
    train, test = MNIST(tmp_path), MNIST(tmp_path, train=False)
    assert len(train) == 5 and len(test) == 3
    image, label = train[2]
    assert image.shape == (1, 28, 28) and image.dtype == tg.float32
    assert isinstance(label, int) and label == 6
    expected = [((2 * 7 + k) % 256) / 255 for k in range(28 * 28)]
    assert image.reshape(-1).tolist() == pytest.approx(expected, rel=1e-6)
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    assert train.data.shape == (5, 28, 28) and train.data.dtype == tg.uint8
    assert train.targets.tolist() == [0, 3, 6, 9, 2]


def test_mnist_transforms_and_loader(tmp_path):
    write_split(tmp_path / "MNIST" / "raw", "train", 6)
    ds = MNIST(tmp_path, transform=lambda x: x * 2, target_transform=lambda y: y + 100)
    image, label = ds[1]
    assert label == 103 and float(image.max()) > 1.0
    x, y = next(iter(DataLoader(MNIST(tmp_path), batch_size=4)))
    assert x.shape == (4, 1, 28, 28) and y.tolist() == [0, 3, 6, 9]


def test_fashion_mnist_uses_its_own_folder(tmp_path):
    write_split(tmp_path / "FashionMNIST" / "raw", "t10k", 2, compress=True)
    ds = FashionMNIST(tmp_path, train=False)
    assert len(ds) == 2 and ds.classes[0] == "T-shirt/top"
    with pytest.raises(FileNotFoundError):
        MNIST(tmp_path, train=False)


def test_missing_file_names_the_paths_tried(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte") as info:
        MNIST(tmp_path)
    assert str(tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte.gz") in str(info.value)
    assert "download=True" in str(info.value)


CORRUPT = {
    "bad magic": (lambda: b"\x08\x03\x00\x00" + images_bytes(2)[4:], "bad magic number"),
    "not ubyte": (lambda: b"\x00\x00\x0d\x03" + images_bytes(2)[4:], "bad magic number"),
    "dimension count": (lambda: idx_bytes([0] * 4, (2, 2)), "2 dimensions, expected 3"),
    "truncated data": (lambda: images_bytes(2)[:-5], r"1563 bytes of data, expected 1568 .*"
                                                    r"truncated"),
    "trailing bytes": (lambda: images_bytes(2) + b"\x00", "trailing bytes"),
    "truncated header": (lambda: images_bytes(2)[:10], "truncated inside its header"),
    "empty": (lambda: b"", "bad magic number"),
}


@pytest.mark.parametrize("make, message", CORRUPT.values(), ids=CORRUPT.keys())
def test_corrupt_image_file_raises_naming_path_and_expectation(tmp_path, make, message):
    write_split(tmp_path, "train", 2)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(make())
    with pytest.raises(ValueError, match=message) as info:
        MNIST(tmp_path)
    assert str(path) in str(info.value)


def test_corrupt_gzip_and_count_mismatch(tmp_path):
    write_split(tmp_path, "train", 2, compress=True)
    gz = tmp_path / "train-labels-idx1-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:-12])
    with pytest.raises(ValueError, match="could not read") as info:
        MNIST(tmp_path)
    assert str(gz) in str(info.value)
    gz.write_bytes(gzip.compress(labels_bytes(3)))
    with pytest.raises(ValueError, match="2 images but .* 3 labels"):
        MNIST(tmp_path)
    with pytest.raises(ValueError, match="expected 1"):
        read_idx(tmp_path / "train-images-idx3-ubyte.gz", ndim=1)


def test_published_digests_are_sha256():
    for cls in (MNIST, FashionMNIST):
        names = [name for name, _ in cls.resources]
        assert sorted(names) == sorted(f"{p}-{k}-ubyte.gz" for p in ("train", "t10k")
                                       for k in ("images-idx3", "labels-idx1"))
        assert all(len(d) == 64 and int(d, 16) >= 0 for _, d in cls.resources)


# ---- download against a local server -------------------------------------------------------
@pytest.fixture
def server(tmp_path, monkeypatch):
    """Serves the gzipped fixtures from tmp_path/served on 127.0.0.1; counts the requests."""
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    served = tmp_path / "served"
    write_split(served, "train", 4, compress=True)
    write_split(served, "t10k", 2, compress=True)
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in served.iterdir()}
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", digests, requests
    httpd.shutdown()
    httpd.server_close()


def _local_mnist(url, digests, mirrors_first=()):
    class LocalMNIST(MNIST):
        mirrors = [*mirrors_first, url]
        resources = sorted(digests.items())
    return LocalMNIST


def test_download_verifies_and_keeps_matching_files(tmp_path, server):
    url, digests, requests = server
    cls = _local_mnist(url, digests, mirrors_first=[url + "missing/"])  # 404, then the good one
    root = tmp_path / "data"
    ds = cls(root, download=True)
    raw = root / "LocalMNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(digests)
    assert len(ds) == 4 and ds[0][0].shape == (1, 28, 28)
    assert len(cls(root, train=False, download=True)) == 2
    assert len(requests) == 8  # 4 files x (a 404, then the file); nothing fetched twice


def test_download_with_a_wrong_digest_is_refused_and_leaves_nothing(tmp_path, server):
    url, digests, requests = server
    wrong = dict(digests, **{"train-labels-idx1-ubyte.gz": "0" * 64})
    root = tmp_path / "data"
    with pytest.raises(RuntimeError, match="SHA-256 mismatch: expected 0{64}") as info:
        _local_mnist(url, wrong)(root, download=True)
    assert "train-labels-idx1-ubyte.gz" in str(info.value)
    raw = root / "LocalMNIST" / "raw"
    left = sorted(p.name for p in raw.iterdir())
    # the files verified before the bad one stay; the refused one and its temp file do not
    assert left == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
                    "train-images-idx3-ubyte.gz"]
    assert "train-labels-idx1-ubyte.gz" in requests[-1]


def test_failed_first_download_leaves_no_folder_behind(tmp_path, server):
    url, digests, _ = server
    wrong = {name: "f" * 64 for name in digests}
    root = tmp_path / "data"
    with pytest.raises(RuntimeError, match="SHA-256 mismatch"):
        _local_mnist(url, wrong)(root, download=True)
    assert not (root / "LocalMNIST").exists()
