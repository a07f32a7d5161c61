"""Domain adaptation by gradient reversal (DANN, Ganin & Lempitsky 2015) on two moons.

    python examples/domain_adaptation.py
    python examples/domain_adaptation.py --angle 50 --epochs 60

The source domain is the two-moons problem, with labels; the target domain is the same
moons rotated by `--angle` degrees, without labels. A classifier trained on the source
alone draws its boundary for the source and misclassifies much of the rotated target.
DANN adds a domain classifier that tries to tell source features from target features,
behind an `nn.GradientReversal` layer: forward it is the identity, backward it flips the
sign of the gradient, so the feature extractor learns features the domain classifier
cannot separate, and the label classifier trained on them carries over to the target.
The reversal weight ramps from 0 to 1 over training, as in the paper.

Prints the target accuracy with and without the reversal layer; saves out/domain_adaptation.png
(both decision boundaries over the two domains) and out/domain_adaptation.safetensors.
"""

import math

from _common import Timer, figure, parse_args, progress, save_checkpoint, save_figure

import tensorgrad as tg
import tensorgrad.nn.functional as F
from tensorgrad import nn

NAME = "domain_adaptation"


def two_moons(n, angle, device, noise=0.1):
    """n points of the two interleaved half circles, rotated by `angle` degrees."""
    label = tg.randint(0, 2, (n,), device=device)
    t = tg.rand(n, device=device) * math.pi
    upper = tg.stack([tg.cos(t), tg.sin(t)], dim=1)
    lower = tg.stack([1 - tg.cos(t), 0.5 - tg.sin(t)], dim=1)
    points = tg.where(label.unsqueeze(1) == 0, upper, lower)
    points = points - tg.tensor([0.5, 0.25], device=device)  # centre the pair of moons
    points = points + noise * tg.randn(n, 2, device=device)
    a = math.radians(angle)
    rotation = tg.tensor([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]],
                         device=device)
    return points @ rotation, label


class DANN(nn.Module):
    def __init__(self, hidden=64):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(2, hidden), nn.ReLU(),
                                      nn.Linear(hidden, hidden), nn.ReLU())
        self.label_head = nn.Linear(hidden, 2)
        self.reverse = nn.GradientReversal(lambda_=0.0)
        self.domain_head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(),
                                         nn.Linear(hidden, 1))

    def forward(self, x):
        h = self.features(x)
        return self.label_head(h), self.domain_head(self.reverse(h)).squeeze(1)


def train(adapt, source, target_x, args):
    """Label loss on the source; with `adapt`, plus the reversed domain loss on both."""
    tg.manual_seed(args.seed)
    model = DANN().to(args.device)
    opt = tg.optim.Adam(model.parameters(), lr=args.lr)
    (xs, ys), n = source, len(source[1])
    domain = tg.cat([tg.zeros(n, device=args.device), tg.ones(n, device=args.device)])
    desc = f"{NAME} [{'DANN' if adapt else 'source only'}]"
    bar = progress(range(args.epochs), args, desc=desc, unit="epoch")
    for epoch in bar:
        progress_ = epoch / max(1, args.epochs - 1)
        model.reverse.lambda_ = 2 / (1 + math.exp(-10 * progress_)) - 1  # 0 -> 1
        for idx in tg.randperm(n, device=args.device).split(args.batch_size):
            logits, _ = model(xs[idx])
            loss = F.cross_entropy(logits, ys[idx])
            acc = (logits.argmax(dim=1) == ys[idx]).float().mean().item()
            if adapt:
                _, domain_logits = model(tg.cat([xs[idx], target_x[idx]]))
                both = tg.cat([domain[:len(idx)], domain[n:n + len(idx)]])
                loss = loss + F.binary_cross_entropy_with_logits(domain_logits, both)
            opt.zero_grad()
            loss.backward()
            opt.step()
        bar.set_postfix(loss=f"{loss.item():.4f}", acc=f"{acc:.3f}")
    return model


def target_accuracy(model, x, y):
    with tg.no_grad():
        return (model(x)[0].argmax(dim=1) == y).float().mean().item()


def plot(models, source, target, args):
    fig, axes = figure(ncols=2, width=5)
    grid = tg.linspace(-2.5, 2.5, 120, device=args.device)
    gx, gy = grid.reshape(1, -1).expand(120, 120), grid.reshape(-1, 1).expand(120, 120)
    points = tg.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
    for ax, (name, model) in zip(axes, models.items()):
        with tg.no_grad():
            p = model(points)[0].softmax(dim=1)[:, 1].reshape(120, 120)
        ax.contourf(gx.tolist(), gy.tolist(), p.tolist(), levels=[0, 0.5, 1],
                    colors=["#cfe2f3", "#f4cccc"], alpha=0.8)
        for (x, y), marker, label in [(source, "o", "source"), (target, "x", "target")]:
            ax.scatter(x[:, 0].tolist(), x[:, 1].tolist(), c=y.tolist(), cmap="coolwarm",
                       marker=marker, s=8, label=label)
        acc = target_accuracy(model, *target)
        ax.set(title=f"{name}: target accuracy {acc:.3f}", xlim=(-2.5, 2.5), ylim=(-2.5, 2.5))
        ax.legend(loc="lower left", fontsize=8)
    return save_figure(fig, args, NAME)


def main(argv=None):
    def extra(parser):
        parser.add_argument("--angle", type=float, default=35.0,
                            help="rotation of the target domain, in degrees")
        parser.add_argument("--samples", type=int, default=1000, help="points per domain")
        parser.add_argument("--batch-size", type=int, default=64)
        parser.add_argument("--lr", type=float, default=3e-3)

    args = parse_args(__doc__, epochs=40, argv=argv, extra=extra)
    source = two_moons(args.samples, 0.0, args.device)
    target = two_moons(args.samples, args.angle, args.device)  # labels kept for scoring only
    with Timer() as timer:
        models = {"source only": train(False, source, target[0], args),
                  "DANN": train(True, source, target[0], args)}
    png = plot(models, source, target, args)
    ckpt = save_checkpoint({k.replace(" ", "_"): m.state_dict() for k, m in models.items()},
                           args, NAME)
    accs = {k: target_accuracy(m, *target) for k, m in models.items()}
    print(f"{NAME}: target accuracy ({args.angle:g} degrees) without reversal "
          f"{accs['source only']:.3f}, with reversal {accs['DANN']:.3f}; source accuracy "
          f"{target_accuracy(models['DANN'], *source):.3f}; in {timer.seconds:.1f} s on "
          f"{args.device}; plot {png}, checkpoint {ckpt}")
    return accs


if __name__ == "__main__":
    main()
