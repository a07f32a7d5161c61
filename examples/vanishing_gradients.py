"""Vanishing gradients, the classic picture: a 20-layer net, three ways.

    python examples/vanishing_gradients.py
    python examples/vanishing_gradients.py --depth 30 --epochs 20

The same 20 linear layers (width 64) on the digits, built three ways:
- sigmoid, naive init (weights N(0, 0.1^2)): sigmoid's slope is at most 1/4 and the small
  weights shrink the signal further, so the gradient shrinks by a constant factor per layer
  and the first layers get almost nothing: training with SGD barely moves;
- ReLU, He init (`nn.init.kaiming_normal_`): the variance is preserved through the layers,
  forward and backward, so every layer gets a gradient of the same order;
- sigmoid, naive init, with `nn.BatchNorm1d` before each activation: normalising the
  pre-activations rescues even the sigmoid net.
The left panel shows each layer's weight-gradient norm on one batch at initialisation, the
right one the training loss under plain SGD with momentum (Adam would rescale the small
gradients and hide the effect). Saves out/vanishing_gradients.png and a checkpoint of the
three trained nets, out/vanishing_gradients.safetensors.
"""

from _common import accuracy, figure, parse_args, progress, save_checkpoint, save_figure, to_device

import tensorgrad as tg
import tensorgrad.nn.functional as F
from tensorgrad import nn
from tensorgrad.data import DataLoader
from tensorgrad.data.datasets import load_digits

NAME = "vanishing_gradients"
SETUPS = ["sigmoid, naive init", "ReLU, He init", "sigmoid, naive init, BatchNorm"]


def build_model(setup, depth, width=64):
    layers, n_in = [], 64
    for _ in range(depth - 1):
        linear = nn.Linear(n_in, width)
        if setup.startswith("ReLU"):
            nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
        else:
            nn.init.normal_(linear.weight, std=0.1)
        nn.init.zeros_(linear.bias)
        layers.append(linear)
        if setup.endswith("BatchNorm"):
            layers.append(nn.BatchNorm1d(width))
        layers.append(nn.ReLU() if setup.startswith("ReLU") else nn.Sigmoid())
        n_in = width
    layers.append(nn.Linear(n_in, 10))
    return nn.Sequential(*layers)


def layer_grad_norms(model, x, y):
    """The norm of each linear layer's weight gradient, input layer first, on one batch."""
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


def train(model, loader, args, desc):
    opt = tg.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    losses = []
    bar = progress(range(args.epochs), args, desc=desc, unit="epoch")
    for _ in bar:
        total = correct = seen = 0
        for x, y in loader:
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(y)
            correct += (logits.argmax(dim=1) == y).sum().item()
            seen += len(y)
        losses.append(total / seen)
        bar.set_postfix(loss=f"{losses[-1]:.4f}", acc=f"{correct / seen:.3f}")
    return losses


def plot(norms, losses, args):
    fig, (ax_grad, ax_loss) = figure(ncols=2, width=5.5)
    for setup in SETUPS:
        ax_grad.plot(range(1, len(norms[setup]) + 1), norms[setup], marker="o", ms=3,
                     label=setup)
        ax_loss.plot(range(1, len(losses[setup]) + 1), losses[setup], label=setup)
    ax_grad.set(yscale="log", xlabel="layer (1 = input)", ylabel="weight gradient norm",
                title=f"gradients at initialisation, {args.depth} layers")
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="training with SGD + momentum")
    ax_grad.legend(fontsize=8)
    ax_loss.legend(fontsize=8)
    return save_figure(fig, args, NAME)


def main(argv=None):
    def extra(parser):
        parser.add_argument("--depth", type=int, default=20, help="number of linear layers")
        parser.add_argument("--lr", type=float, default=0.01)
        parser.add_argument("--batch-size", type=int, default=64)

    args = parse_args(__doc__, epochs=10, argv=argv, extra=extra)
    train_set, test_set = load_digits(test_size=0.2, seed=0)
    train_set, test_set = to_device(train_set, args.device), to_device(test_set, args.device)
    x0, y0 = train_set[:256]  # the batch on which gradients at initialisation are measured
    norms, losses, models, results = {}, {}, {}, []
    for setup in SETUPS:
        tg.manual_seed(args.seed)
        model = models[setup] = build_model(setup, args.depth).to(args.device)
        norms[setup] = layer_grad_norms(model, x0, y0)
        loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True,
                            generator=tg.Generator().manual_seed(args.seed))
        losses[setup] = train(model, loader, args, desc=f"{NAME} [{setup}]")
        first_to_last = norms[setup][0] / norms[setup][-1]
        results.append(f"{setup}: layer-1/layer-{args.depth} gradient ratio "
                       f"{first_to_last:.1e}, test accuracy "
                       f"{accuracy(model, DataLoader(test_set, batch_size=512)):.3f}")
    png = plot(norms, losses, args)
    ckpt = save_checkpoint({s.replace(" ", "_").replace(",", ""): m.state_dict()
                            for s, m in models.items()}, args, NAME)
    print(f"{NAME}: " + "; ".join(results) + f"; on {args.device}; plot {png}, "
          f"checkpoint {ckpt}")
    return norms


if __name__ == "__main__":
    main()
