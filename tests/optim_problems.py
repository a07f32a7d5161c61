"""Test problems shared by the optimizer tests: Rosenbrock and PyTorch's closure convention."""

import numpy as np

import tensorgrad as tg


def rosenbrock(x):
    return (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2


def make_closure(opt, f, *params):
    """PyTorch's LBFGS convention: zero the gradients, compute the loss, backward, return it."""
    def closure():
        opt.zero_grad()
        loss = f(*params)
        loss.backward()
        return loss
    return closure


def start():
    """Rosenbrock's classic starting point (-1.2, 1), float64, requiring grad."""
    return tg.tensor(np.array([-1.2, 1.0]), requires_grad=True)
