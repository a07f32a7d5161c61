"""What every example shares: the command line, the device, the progress bar, the plot and
the checkpoint. Each example imports it as `from _common import ...` (Python puts the
script's folder, examples/, first on the path), so the examples themselves stay about the
model and the training loop.

    python examples/NAME.py [--device cpu|cuda|auto] [--epochs N] [--out DIR] [--seed S]
"""

import argparse
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # non-interactive: write PNG files, never open a window
import matplotlib.pyplot as plt  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

import tensorgrad as tg  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent / "out"


def parse_args(doc, epochs, argv=None, extra=None):
    """The shared flags, plus whatever `extra(parser)` adds; returns the parsed namespace."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", choices=["cpu", "cuda", "auto"],
                        help="where to train; auto picks cuda when a GPU is usable (default)")
    parser.add_argument("--epochs", type=int, default=epochs,
                        help=f"passes over the training data (default {epochs})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="folder for the plot and the checkpoint (default examples/out)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    if extra is not None:
        extra(parser)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    tg.manual_seed(args.seed)
    args.device = pick_device(args.device)
    return args


def pick_device(name):
    """`tg.device(name)`; asking for cuda where none is usable stops with the reason."""
    if name == "cuda" and not tg.cuda.is_available():
        raise SystemExit(f"--device cuda: {tg.cuda.why_unavailable()}")
    return tg.device(name)


def progress(iterable, args, desc, **kwargs):
    """A tqdm bar over `iterable` (on stderr); `bar.set_postfix(loss=..., acc=...)` updates it."""
    disable = args.quiet or os.environ.get("TQDM_DISABLE") == "1"
    return tqdm(iterable, desc=desc, disable=disable, dynamic_ncols=True, **kwargs)


def accuracy(model, loader):
    """Share of correct argmax predictions over a DataLoader, in eval mode, without a graph."""
    model.eval()
    correct = total = 0
    with tg.no_grad():
        for x, y in loader:
            correct += (model(x).argmax(dim=1) == y).sum().item()
            total += len(y)
    model.train()
    return correct / total


def train_classifier(model, opt, train_loader, test_loader, args, name, sched=None,
                     label_smoothing=0.0):
    """The classic loop: per batch, forward, cross-entropy, zero_grad, backward, step.

    One tqdm bar over the epochs shows the training loss and the test accuracy. Returns the
    history: per epoch the mean training loss, the training accuracy (measured on the fly, in
    train mode) and the test accuracy.
    """
    history = {"loss": [], "train_acc": [], "test_acc": []}
    bar = progress(range(args.epochs), args, desc=name, unit="epoch")
    for _epoch in bar:
        total = correct = seen = 0
        for x, y in train_loader:
            logits = model(x)
            loss = tg.nn.functional.cross_entropy(logits, y, label_smoothing=label_smoothing)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(y)
            correct += (logits.argmax(dim=1) == y).sum().item()
            seen += len(y)
        if sched is not None:
            sched.step()
        history["loss"].append(total / seen)
        history["train_acc"].append(correct / seen)
        history["test_acc"].append(accuracy(model, test_loader))
        bar.set_postfix(loss=f"{total / seen:.4f}", acc=f"{history['test_acc'][-1]:.4f}")
    return history


def plot_history(history, args, name, title):
    """Loss and accuracy curves side by side, saved as OUT/name.png."""
    fig, (ax_loss, ax_acc) = figure(ncols=2)
    epochs = range(1, len(history["loss"]) + 1)
    ax_loss.plot(epochs, history["loss"])
    ax_loss.set(xlabel="epoch", ylabel="training loss", title=title)
    ax_acc.plot(epochs, history["train_acc"], label="train (during the epoch)")
    ax_acc.plot(epochs, history["test_acc"], label="test")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", ylim=(0.8, 1.0), title="accuracy")
    ax_acc.legend(loc="lower right")
    return save_figure(fig, args, name)


def to_device(dataset, device):
    """A TensorDataset with every tensor moved to `device` once, before training."""
    return tg.data.TensorDataset(*(t.to(device) for t in dataset.tensors))


def save_figure(fig, args, name):
    """Write `fig` to OUT/name.png and close it; returns the path."""
    path = args.out / f"{name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def save_checkpoint(obj, args, name):
    """`tg.save(obj, OUT/name.safetensors)`; returns the path."""
    path = args.out / f"{name}.safetensors"
    tg.save(obj, path)
    return path


def figure(ncols=1, width=5.0, height=3.6):
    """A row of `ncols` axes (a single Axes when ncols is 1)."""
    return plt.subplots(1, ncols, figsize=(width * ncols, height))


class Timer:
    """`with Timer() as t: ...`; then `t.seconds`."""

    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
