"""Softmax regression on scikit-learn's bundled digits, with plain tensorgrad Tensors.

The main job until tensorgrad.nn and tensorgrad.optim land: a weight matrix `W` (64x10) and
a bias `b` (10) are leaf tensors that require grad; the loss is the mean cross-entropy,
written as `log_softmax` and the log-probability of each target picked with `gather`; the
update is hand-written gradient descent under `tg.no_grad()`.

    pip install -e .[examples]
    python examples/digits_softmax.py                 # cpu, or cuda when a GPU is usable
    python examples/digits_softmax.py --device cpu --epochs 10

The digits (1797 images of 8x8 pixels) ship with scikit-learn, so nothing is downloaded.
It prints the loss every few epochs and ends with `test accuracy: 0.9xxx`.
"""

import argparse
import time

import tensorgrad as tg


def load_digits_split(seed=0, test_size=0.2):
    """Digits features scaled to [0, 1] and labels, split 80/20 (stratified, fixed seed)."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as e:
        raise SystemExit("digits_softmax.py needs scikit-learn for its data set "
                         f"({e}).\n  hint: pip install -e .[examples]") from None
    X, y = load_digits(return_X_y=True)
    X = X / 16.0  # pixel intensities are 0..16
    return train_test_split(X, y, test_size=test_size, random_state=seed, stratify=y)


def cross_entropy(logits, target):
    """Mean negative log-probability of the target class of each row."""
    logp = tg.log_softmax(logits, dim=1)
    picked = logp.gather(1, target.reshape(-1, 1))  # (N, 1): log p[i, target[i]]
    return -picked.mean()


def train(X, y, epochs, lr, batch_size, device, log_every):
    n, features = X.shape
    classes = 10
    W = (tg.randn(features, classes, device=device) * 0.01).requires_grad_()
    b = tg.zeros(classes, device=device, requires_grad=True)
    for epoch in range(1, epochs + 1):
        order = tg.randperm(n, device=device)  # follows tg.manual_seed
        total = 0.0
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            loss = cross_entropy(X[idx] @ W + b, y[idx])
            loss.backward()
            with tg.no_grad():
                W -= lr * W.grad
                b -= lr * b.grad
            W.grad = None
            b.grad = None
            total += loss.item() * len(idx)
        if epoch == 1 or epoch % log_every == 0 or epoch == epochs:
            print(f"epoch {epoch:4d}  train loss {total / n:.4f}")
    return W, b


def accuracy(W, b, X, y):
    with tg.no_grad():
        pred = (X @ W + b).argmax(dim=1)
    return (pred == y).float().mean().item()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=["cpu", "cuda", "auto"],
                        help="where to train; auto picks cuda when a GPU is usable")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--lr", type=float, default=0.5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    tg.manual_seed(args.seed)
    device = tg.device(args.device)
    if device.type == "cuda" and not tg.cuda.is_available():
        raise SystemExit(f"--device cuda: {tg.cuda.why_unavailable()}")
    X_train, X_test, y_train, y_test = load_digits_split(seed=args.seed)
    X_train = tg.tensor(X_train, dtype=tg.float32, device=device)
    X_test = tg.tensor(X_test, dtype=tg.float32, device=device)
    y_train = tg.tensor(y_train, dtype=tg.int64, device=device)
    y_test = tg.tensor(y_test, dtype=tg.int64, device=device)
    print(f"device {device}: {len(X_train)} train / {len(X_test)} test digits, "
          f"{args.epochs} epochs, lr {args.lr}, batch {args.batch_size}")

    t0 = time.perf_counter()
    W, b = train(X_train, y_train, args.epochs, args.lr, args.batch_size, device,
                 log_every=max(1, args.epochs // 6))
    seconds = time.perf_counter() - t0
    print(f"train accuracy: {accuracy(W, b, X_train, y_train):.4f}")
    print(f"test accuracy: {accuracy(W, b, X_test, y_test):.4f}")
    print(f"trained in {seconds:.2f} s")


if __name__ == "__main__":
    main()
