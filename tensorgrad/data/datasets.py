"""Ready-made datasets: scikit-learn's bundled digits, and MNIST / Fashion-MNIST IDX readers.

`load_digits` needs scikit-learn (the optional extra `examples`), imported only when called.
The IDX reader parses bytes with `struct`/`gzip` and makes tensors with `tg.frombuffer`;
`download=True` fetches the official files and keeps each only once its SHA-256 matched.
Speaks only Tensor and tensorgrad's public functions: imports no array library.
"""

import gzip
import hashlib
import math
import os
import struct
import tempfile
import urllib.request
import zlib
from pathlib import Path

from ..creation import frombuffer, randperm, tensor
from ..dtypes import float32, int64, uint8
from ..random import Generator
from .dataset import Dataset, TensorDataset

# ---- scikit-learn's digits -----------------------------------------------------------------


def load_digits(test_size=0.2, seed=0):
    """scikit-learn's 1,797 8×8 digits (bundled with it: no download) as `(train, test)`.

    Each is a TensorDataset of features (N, 64) float32 in [0, 1] (pixel / 16) and labels
    (N,) int64. The split is stratified: each class gets its share of the `test_size`
    samples (a fraction, or a count; ceil(fraction * 1797) in all, shared out by largest
    remainder), chosen at random by a `tg.Generator` seeded with `seed`; both parts are
    shuffled. The same seed gives the same split on every device and run.

    >>> import tensorgrad as tg
    >>> train, test = tg.data.datasets.load_digits()
    >>> len(train), len(test), train.tensors[0].shape[1]
    (1437, 360, 64)
    """
    bunch = _sklearn_digits()
    x = tensor(bunch.data, dtype=float32) / 16.0
    y = tensor(bunch.target, dtype=int64)
    train_idx, test_idx = _stratified_split(y.tolist(), test_size, seed)
    return (TensorDataset(x[train_idx], y[train_idx]),
            TensorDataset(x[test_idx], y[test_idx]))


def _sklearn_digits():
    try:
        from sklearn.datasets import load_digits as sklearn_load_digits
    except ImportError as e:
        raise ImportError("tg.data.datasets.load_digits needs scikit-learn, an optional "
                          "dependency\n  hint: pip install -e .[examples]") from e
    return sklearn_load_digits()


def _stratified_split(labels, test_size, seed):
    """(train, test) index tensors; each class keeps its share of the test set."""
    n = len(labels)
    n_test = _test_count(test_size, n)
    by_class = {}
    for i, c in enumerate(labels):
        by_class.setdefault(c, []).append(i)
    classes = sorted(by_class)
    quotas = [n_test * len(by_class[c]) / n for c in classes]
    counts = [math.floor(q) for q in quotas]
    by_remainder = sorted(range(len(classes)), key=lambda k: (counts[k] - quotas[k], k))
    for k in by_remainder[:n_test - sum(counts)]:
        counts[k] += 1
    g = Generator().manual_seed(seed)
    train, test = [], []
    for c, k in zip(classes, counts):
        members = by_class[c]
        order = randperm(len(members), generator=g, device="cpu").tolist()
        test += [members[j] for j in order[:k]]
        train += [members[j] for j in order[k:]]
    return tuple(tensor(part, dtype=int64)[randperm(len(part), generator=g, device="cpu")]
                 for part in (train, test))


def _test_count(test_size, n):
    if isinstance(test_size, float) and 0 < test_size < 1:
        return math.ceil(test_size * n)
    if isinstance(test_size, int) and not isinstance(test_size, bool) and 0 < test_size < n:
        return test_size
    raise ValueError(f"load_digits: test_size should be a float in (0, 1) or an int in "
                     f"[1, {n - 1}], got {test_size!r}")


# ---- MNIST-style IDX files -----------------------------------------------------------------
class MNIST(Dataset):
    """The MNIST digits, read from the standard IDX files (as torchvision's MNIST).

    Files `train-images-idx3-ubyte`, `train-labels-idx1-ubyte` (or `t10k-...` for
    `train=False`), raw or `.gz`, are looked up in `root/MNIST/raw/` (torchvision's layout),
    then in `root` itself. Items are `(image, label)`: image a float32 (1, 28, 28) tensor in
    [0, 1], label an int; `transform` / `target_transform` are applied to them. `data` (N, 28,
    28) uint8 and `targets` (N,) int64 hold the whole split.

    `download=True` fetches the files missing from `root/MNIST/raw/`, trying each of
    `mirrors` in turn, and keeps a file only once its SHA-256 equals the one in `resources`
    (it is written to a temporary file in that folder and renamed after the check, so a failed
    or mismatching download leaves nothing behind). The digests are the published SHA-256 of
    the official `.gz` files (their MD5s are the ones torchvision checks); a subclass or an
    instance may set other `mirrors` / `resources`.
    """

    mirrors = ["https://ossci-datasets.s3.amazonaws.com/mnist/",
               "http://yann.lecun.com/exdb/mnist/"]
    resources = [
        ("train-images-idx3-ubyte.gz",
         "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        ("train-labels-idx1-ubyte.gz",
         "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        ("t10k-images-idx3-ubyte.gz",
         "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        ("t10k-labels-idx1-ubyte.gz",
         "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    ]
    classes = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five",
               "6 - six", "7 - seven", "8 - eight", "9 - nine"]

    def __init__(self, root, train=True, transform=None, target_transform=None,
                 download=False):
        self.root = Path(root).expanduser()
        self.train, self.transform, self.target_transform = train, transform, target_transform
        if download:
            self.download()
        prefix = "train" if train else "t10k"
        images_path = self._find(f"{prefix}-images-idx3-ubyte")
        labels_path = self._find(f"{prefix}-labels-idx1-ubyte")
        self.data = read_idx(images_path, ndim=3)
        self.targets = read_idx(labels_path, ndim=1).to(int64)
        if self.data.shape[0] != self.targets.shape[0]:
            raise ValueError(f"{type(self).__name__}: {images_path} holds "
                             f"{self.data.shape[0]} images but {labels_path} holds "
                             f"{self.targets.shape[0]} labels; expected one label per image\n"
                             "  hint: the two files come from different splits or downloads")
        self._labels = self.targets.tolist()

    @property
    def raw_folder(self):
        return self.root / type(self).__name__ / "raw"

    def __len__(self):
        return len(self._labels)

    def __getitem__(self, index):
        image = (self.data[index].to(float32) / 255.0).unsqueeze(0)
        label = self._labels[index]
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return image, label

    def _candidates(self, name):
        return [folder / f"{name}{ext}" for folder in (self.raw_folder, self.root)
                for ext in ("", ".gz")]

    def _find(self, name):
        candidates = self._candidates(name)
        for path in candidates:
            if path.is_file():
                return path
        tried = "\n".join(f"    {p}" for p in candidates)
        raise FileNotFoundError(f"{type(self).__name__}: {name} not found; looked for\n{tried}"
                                f"\n  hint: pass download=True, or put the files in "
                                f"{self.raw_folder}")

    def download(self):
        """Fetch each file of `resources` that is not there yet, checking its SHA-256."""
        for filename, sha256 in self.resources:
            name = filename.removesuffix(".gz")
            if any(p.is_file() for p in self._candidates(name)):
                continue
            download_verified([m + filename for m in self.mirrors],
                              self.raw_folder / filename, sha256)

    def __repr__(self):
        split = "Train" if self.train else "Test"
        return (f"Dataset {type(self).__name__}\n    Number of datapoints: {len(self)}\n"
                f"    Root location: {self.root}\n    Split: {split}")


class FashionMNIST(MNIST):
    """Zalando's Fashion-MNIST: MNIST's format and layout (`root/FashionMNIST/raw/`)."""

    mirrors = ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"]
    resources = [
        ("train-images-idx3-ubyte.gz",
         "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
        ("train-labels-idx1-ubyte.gz",
         "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
        ("t10k-images-idx3-ubyte.gz",
         "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
        ("t10k-labels-idx1-ubyte.gz",
         "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
    ]
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot"]


# ---- reading and fetching ------------------------------------------------------------------
_UBYTE = 0x08


def read_idx(path, ndim):
    """An IDX file of unsigned bytes with `ndim` dimensions (raw, or gzip if it ends in .gz),
    as a uint8 tensor of its shape. Raises ValueError naming the path and what was expected
    for a bad magic number, another dimension count, or too few or too many data bytes."""
    path = Path(path)
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            data = bytearray(f.read())  # writable, so the tensors are
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise ValueError(f"read_idx: could not read {path}: {e}\n  hint: the file is "
                         "truncated or not gzip data; delete it and download it again") from e
    magic = struct.pack(">BBBB", 0, 0, _UBYTE, ndim)
    if len(data) < 4 or data[:3] != magic[:3]:
        raise ValueError(f"read_idx: {path} has a bad magic number {bytes(data[:4]).hex()}; "
                         f"expected {magic.hex()} (an IDX file of unsigned bytes)\n"
                         "  hint: is it an MNIST IDX file, and decompressed if not named .gz?")
    if data[3] != ndim:
        raise ValueError(f"read_idx: {path} has {data[3]} dimensions, expected {ndim} "
                         f"({'images: count, rows, columns' if ndim == 3 else 'labels: count'})")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"read_idx: {path} is truncated inside its header ({len(data)} "
                         f"bytes, expected at least {header})")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = math.prod(shape)
    if len(data) - header != expected:
        raise ValueError(f"read_idx: {path} holds {len(data) - header} bytes of data, "
                         f"expected {expected} for shape {shape} "
                         f"({'truncated' if len(data) - header < expected else 'trailing bytes'})")
    return frombuffer(data, dtype=uint8, offset=header).reshape(shape)


def download_verified(urls, dest, sha256, *, timeout=60):
    """Fetch `dest` from the first of `urls` that serves bytes whose SHA-256 is `sha256`.

    Each attempt streams into a temporary file next to `dest`, renamed to `dest` only after
    the digest matched; a failed or mismatching attempt deletes it (and the folders this call
    created), so nothing is left behind. Raises RuntimeError naming every URL and its failure.
    """
    dest = Path(dest)
    created = _make_folders(dest.parent)
    failures = []
    for url in urls:
        try:
            _fetch_checked(url, dest, sha256.lower(), timeout)
            return dest
        except (OSError, ValueError) as e:  # URLError and HTTPError are OSErrors
            failures.append(f"    {url}: {e}")
    for folder in reversed(created):
        try:
            folder.rmdir()
        except OSError:
            pass  # not empty: another file is there now
    raise RuntimeError(f"download: could not get a verified {dest.name}\n"
                       + "\n".join(failures) + f"\n  hint: check the network, or place "
                       f"the file in {dest.parent} yourself")


def _make_folders(folder):
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for f in reversed(missing):
        f.mkdir(exist_ok=True)
    return list(reversed(missing))


def _fetch_checked(url, dest, sha256, timeout):
    request = urllib.request.Request(url, headers={"User-Agent": "tensorgrad"})
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as r:
            while chunk := r.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha256:
            raise ValueError(f"SHA-256 mismatch: expected {sha256}, got {digest.hexdigest()}; "
                             "the file was refused")
        os.replace(tmp, dest)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
