"""Why gates matter: a plain RNN, a GRU and an LSTM on the adding problem.

    python examples/sequence_lstm.py                 # sequences of 50 steps
    python examples/sequence_lstm.py --length 100 --epochs 12

The adding problem (Hochreiter & Schmidhuber 1997): each step of a sequence carries a random
number in [0, 1) and a marker; exactly two steps are marked, one in each half, and the
target is the sum of the two marked numbers. The answer depends on inputs many steps back,
so the gradient has to flow through the whole sequence. A plain `nn.RNN`'s gradient shrinks
by a factor at every step, and it never beats the trivial answer 1 (mean squared error
1/6 ~ 0.167); the gated `nn.GRU` and `nn.LSTM` carry it along their additive cell path and
solve the task (MSE ~ 0.001) after a few hundred to a thousand steps. Batches are generated
on the fly with tensorgrad ops, so every step sees new data.

Saves out/sequence_lstm.png (training MSE of all three) and out/sequence_lstm.safetensors
(the three models' state dicts).
"""

from _common import Timer, figure, parse_args, progress, save_checkpoint, save_figure

import tensorgrad as tg
from tensorgrad import nn

NAME = "sequence_lstm"
CELLS = {"RNN": nn.RNN, "GRU": nn.GRU, "LSTM": nn.LSTM}
TOLERANCE = 0.05  # a prediction within this of the target counts as correct


def adding_batch(n, length, device):
    """Inputs (n, length, 2): a value and a marker per step; targets (n,): the marked sum."""
    values = tg.rand(n, length, device=device)
    steps = tg.arange(length, device=device)
    first = tg.randint(0, length // 2, (n, 1), device=device)
    second = tg.randint(length // 2, length, (n, 1), device=device)
    markers = ((steps == first) | (steps == second)).float()
    return tg.stack([values, markers], dim=2), (values * markers).sum(dim=1)


class Regressor(nn.Module):
    """A recurrent layer reads the sequence; a linear head reads its last hidden state."""

    def __init__(self, cell, hidden):
        super().__init__()
        self.rnn = CELLS[cell](2, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1]).squeeze(1)


def scores(pred, target):
    err = pred - target
    return err.pow(2).mean(), (err.abs() < TOLERANCE).float().mean().item()


def train(cell, args):
    model = Regressor(cell, args.hidden).to(args.device)
    opt = tg.optim.Adam(model.parameters(), lr=args.lr)
    losses = []
    steps = range(args.epochs * args.steps_per_epoch)
    bar = progress(steps, args, desc=f"{NAME} {cell:>4}", unit="step")
    for step in bar:
        x, y = adding_batch(args.batch_size, args.length, args.device)
        loss, acc = scores(model(x), y)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if step % 10 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}", acc=f"{acc:.2f}")
    return model, losses


def smooth(values, window=25):
    """Running mean over the last `window` values."""
    out = []
    for i in range(len(values)):
        recent = values[max(0, i - window + 1):i + 1]
        out.append(sum(recent) / len(recent))
    return out


def plot(curves, args):
    fig, ax = figure(width=7, height=4)
    for cell, losses in curves.items():
        ax.plot(smooth(losses), label=cell)
    ax.axhline(1 / 6, color="gray", linestyle="--", label="always answer 1")
    ax.set(xlabel="training step", ylabel="mean squared error (running mean)", yscale="log",
           title=f"adding problem, sequences of {args.length} steps")
    ax.legend()
    return save_figure(fig, args, NAME)


def main(argv=None):
    def extra(parser):
        parser.add_argument("--length", type=int, default=50, help="sequence length")
        parser.add_argument("--steps-per-epoch", type=int, default=250)
        parser.add_argument("--hidden", type=int, default=32)
        parser.add_argument("--batch-size", type=int, default=64)
        parser.add_argument("--lr", type=float, default=3e-3)

    args = parse_args(__doc__, epochs=6, argv=argv, extra=extra)
    x_test, y_test = adding_batch(1000, args.length, args.device)  # one fixed test set
    curves, models, results = {}, {}, []
    with Timer() as timer:
        for cell in CELLS:
            tg.manual_seed(args.seed)  # the same initial draw and batches for each cell
            models[cell], curves[cell] = train(cell, args)
            with tg.no_grad():
                mse, acc = scores(models[cell](x_test), y_test)
            results.append(f"{cell} MSE {mse.item():.4f} acc {acc:.2f}")
    png = plot(curves, args)
    ckpt = save_checkpoint({cell: m.state_dict() for cell, m in models.items()}, args, NAME)
    print(f"{NAME}: adding problem, length {args.length}, test: " + ", ".join(results)
          + f" (answering 1 scores MSE 0.167) in {timer.seconds:.1f} s on {args.device}; "
          f"plot {png}, checkpoint {ckpt}")
    return models


if __name__ == "__main__":
    main()
