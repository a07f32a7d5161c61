"""The example scripts run as a user runs them (`python examples/<name>.py`), in a subprocess.

The main job, examples/digits_mlp.py, runs in full (in this process, so that the trained
model can be compared with its checkpoint) and must reach 97 % test accuracy on the
held-out 20 % of the digits. Every other example runs in a tiny configuration, so none can
rot: it must finish, print its one-line result, and write its PNG plot and a checkpoint
that `tg.load` reads.
"""

import importlib.util
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

import tensorgrad as tg

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"

pytest.importorskip("sklearn", reason="the examples need scikit-learn: pip install -e .[test]")
pytest.importorskip("matplotlib", reason="the examples need matplotlib: pip install -e .[test]")
pytest.importorskip("tqdm", reason="the examples need tqdm: pip install -e .[test]")


def run_example(name, *args, out=None, timeout=300, check=True):
    """Run examples/<name>.py on the CPU from the repo root; return the finished process."""
    env = dict(os.environ, TENSORGRAD_DEVICE="cpu", TQDM_DISABLE="1")
    argv = [sys.executable, str(EXAMPLES / f"{name}.py"), *args]
    if out is not None:
        argv += ["--out", str(out)]
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if check:
        assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def result_line(name, proc, out):
    """The example's one-line result; checks it names the PNG and checkpoint it wrote."""
    lines = [line for line in proc.stdout.splitlines() if line.startswith(f"{name}: ")]
    assert len(lines) == 1, f"expected one '{name}: ...' result line:\n{proc.stdout}"
    png, ckpt = out / f"{name}.png", out / f"{name}.safetensors"
    assert png.stat().st_size > 5000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(png) in lines[0] and str(ckpt) in lines[0]
    assert tg.load(ckpt), f"{ckpt} is empty"
    return lines[0]


def load_example(name, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))  # as `python examples/x.py` would
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- the main job --------------------------------------------------------------------------


def test_digits_mlp_reaches_97_percent_and_its_checkpoint_reloads(tmp_path, monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    mlp = load_example("digits_mlp", monkeypatch)
    model, history = mlp.main(["--device", "cpu", "--out", str(tmp_path)])
    assert history["test_acc"][-1] >= 0.97, history["test_acc"]
    assert history["loss"][-1] < history["loss"][0] / 2
    assert (tmp_path / "digits_mlp.png").read_bytes()[:4] == b"\x89PNG"

    ckpt = tg.load(tmp_path / "digits_mlp.safetensors")
    assert ckpt["epochs"] == 30 and set(ckpt) == {"model", "optimizer", "epochs"}
    fresh = mlp.build_model()
    fresh.load_state_dict(ckpt["model"])
    model.eval()
    fresh.eval()
    _, test = tg.data.datasets.load_digits()
    x, _ = test.tensors
    with tg.no_grad():
        assert (fresh(x) == model(x)).all().item()
    opt = tg.optim.Adam(fresh.parameters())
    opt.load_state_dict(ckpt["optimizer"])  # the optimizer state reloads too
    assert len(opt.state) == len(list(fresh.parameters()))


def test_digits_mlp_command_line(tmp_path):
    proc = run_example("digits_mlp", "--device", "cpu", "--epochs", "1", out=tmp_path)
    line = result_line("digits_mlp", proc, tmp_path)
    assert re.search(r"test accuracy 0\.\d{4} after 1 epochs .* on cpu", line), line


def test_examples_are_deterministic(tmp_path):
    args = ("--device", "cpu", "--epochs", "2")
    first = run_example("digits_mlp", *args, out=tmp_path).stdout
    second = run_example("digits_mlp", *args, out=tmp_path).stdout
    strip = re.compile(r" in [0-9.]+ s ")  # the only part with a timing
    assert strip.sub(" ", first) == strip.sub(" ", second)


@pytest.mark.skipif(tg.cuda.is_available(), reason="a GPU is usable here")
def test_device_cuda_without_a_gpu_says_why(tmp_path):
    proc = run_example("digits_mlp", "--device", "cuda", out=tmp_path, check=False)
    assert proc.returncode != 0
    assert "--device cuda: " + tg.cuda.why_unavailable() in proc.stderr
    assert "Traceback" not in proc.stderr


def test_auto_device_falls_back_to_the_cpu_without_a_gpu(tmp_path):
    proc = run_example("digits_mlp", "--device", "auto", "--epochs", "1", out=tmp_path)
    expected = "cuda" if tg.cuda.is_available() else "cpu"
    assert f" on {expected}" in result_line("digits_mlp", proc, tmp_path)


# ---- every other example, tiny --------------------------------------------------------------


def test_digits_cnn_tiny(tmp_path):
    proc = run_example("digits_cnn", "--device", "cpu", "--epochs", "1", out=tmp_path)
    line = result_line("digits_cnn", proc, tmp_path)
    acc = float(re.search(r"test accuracy ([0-9.]+) on digits", line).group(1))
    assert acc > 0.5, line  # one epoch of a CNN already does far better than chance (0.1)


def write_idx(path, array_bytes, dims):
    """An IDX file: magic (0, 0, type 0x08 = ubyte, number of dims), sizes, then the bytes."""
    header = struct.pack(">BBBB", 0, 0, 0x08, len(dims)) + struct.pack(f">{len(dims)}I", *dims)
    path.write_bytes(header + bytes(array_bytes))


def test_digits_cnn_reads_mnist_idx_files(tmp_path):
    # A tiny stand-in for MNIST in torchvision's layout: each image is bright in the row
    # that is its label, so the CNN has something to learn.
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", 60), ("t10k", 20)):
        labels = [i % 10 for i in range(n)]
        pixels = bytearray(n * 28 * 28)
        for i, label in enumerate(labels):
            row = 2 + 2 * label
            pixels[i * 784 + row * 28:i * 784 + (row + 1) * 28] = b"\xff" * 28
        write_idx(raw / f"{prefix}-images-idx3-ubyte", pixels, (n, 28, 28))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels, (n,))
    out = tmp_path / "out"
    proc = run_example("digits_cnn", "--device", "cpu", "--epochs", "1",
                       "--mnist-dir", str(tmp_path / "data"), out=out)
    line = result_line("digits_cnn", proc, out)
    assert " on MNIST after 1 epochs" in line
    assert tg.load(out / "digits_cnn.safetensors")["side"] == 28


def test_sequence_lstm_tiny(tmp_path):
    proc = run_example("sequence_lstm", "--device", "cpu", "--epochs", "1",
                       "--steps-per-epoch", "20", "--length", "10", out=tmp_path)
    line = result_line("sequence_lstm", proc, tmp_path)
    for cell in ("RNN", "GRU", "LSTM"):
        assert re.search(rf"{cell} MSE [0-9.]+ acc [0-9.]+", line), line
    assert set(tg.load(tmp_path / "sequence_lstm.safetensors")) == {"RNN", "GRU", "LSTM"}


def test_curve_fit_lm_levenberg_marquardt_converges_first(tmp_path):
    proc = run_example("curve_fit_lm", "--device", "cpu", "--epochs", "30",
                       "--adam-steps", "400", out=tmp_path)
    line = result_line("curve_fit_lm", proc, tmp_path)
    reached = dict(re.findall(r"(\S+) [0-9.]+ \(within 1 % of the best after (\d+)", line))
    assert set(reached) == {"Levenberg-Marquardt", "L-BFGS", "Adam"}, line
    assert int(reached["Levenberg-Marquardt"]) < int(reached["L-BFGS"]) < int(reached["Adam"])


def test_vanishing_gradients_tiny(tmp_path):
    proc = run_example("vanishing_gradients", "--device", "cpu", "--epochs", "1",
                       out=tmp_path)
    line = result_line("vanishing_gradients", proc, tmp_path)
    ratios = [float(r) for r in re.findall(r"gradient ratio ([0-9.e+-]+),", line)]
    sigmoid, relu_he, batchnorm = ratios  # measured at initialisation: no training needed
    assert sigmoid < 1e-8 and relu_he > 1e-2 and batchnorm > 1e-2, line


def test_domain_adaptation_tiny(tmp_path):
    proc = run_example("domain_adaptation", "--device", "cpu", "--epochs", "2",
                       "--samples", "200", out=tmp_path)
    line = result_line("domain_adaptation", proc, tmp_path)
    assert re.search(r"without reversal 0\.\d{3}, with reversal 0\.\d{3}", line), line


def test_ddp_digits_runs_in_one_process_and_resumes(tmp_path):
    # One process without mpiexec (an MPI singleton); tests/distributed runs it on 2 ranks' API.
    pytest.importorskip("mpi4py", reason="ddp_digits needs mpi4py: pip install -e .[test]")
    ckpt = tmp_path / "ddp.safetensors"
    os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    first = run_example("ddp_digits", "--epochs", "1", "--checkpoint", str(ckpt), timeout=120)
    assert re.search(r"1 process\(es\), epochs 0-1, test accuracy 0\.\d+", first.stdout)
    assert tg.load(ckpt)
    again = run_example("ddp_digits", "--epochs", "2", "--resume", "--checkpoint", str(ckpt),
                        timeout=120)
    assert "epochs 1-3" in again.stdout, again.stdout  # --epochs more after the saved one


def test_every_example_is_tested():
    tested = set(re.findall(r'run_example\(\s*"(\w+)"', Path(__file__).read_text()))
    examples = {p.stem for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")}
    assert examples <= tested, examples - tested


def test_without_scikit_learn_the_main_job_names_the_extra(tmp_path):
    # A `sklearn` package that fails to import stands in for a missing scikit-learn.
    (tmp_path / "sklearn").mkdir()
    (tmp_path / "sklearn" / "__init__.py").write_text("raise ImportError('no sklearn here')\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    proc = subprocess.run([sys.executable, str(EXAMPLES / "digits_mlp.py"), "--epochs", "1",
                           "--device", "cpu", "--out", str(tmp_path / "out")], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "pip install -e .[examples]" in proc.stderr
