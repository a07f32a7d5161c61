"""The main job: a two-layer perceptron learns scikit-learn's handwritten digits with Adam.

    pip install -e .[examples]
    python examples/digits_mlp.py                      # cpu, or cuda when a GPU is usable
    python examples/digits_mlp.py --device cpu --epochs 5

The 1,797 digits (8x8 pixels, bundled with scikit-learn: nothing to download) are split
80/20, stratified (always the same split). A 64-256-10 MLP with ReLU and dropout trains
with `tg.optim.Adam` on mini-batches from a shuffling `tg.data.DataLoader`, on the
cross-entropy with label smoothing 0.1 (worth about a point of accuracy here); a cosine
schedule lowers the learning rate. The loop itself is `train_classifier` in _common.py:
forward, loss, `opt.zero_grad()`, `loss.backward()`, `opt.step()`, as in PyTorch.

It reaches about 98 % test accuracy (97.5 to 99 % over seeds) in a few seconds on two CPU
cores, then saves the loss/accuracy curves to out/digits_mlp.png and a checkpoint (model
and optimizer state dicts) to out/digits_mlp.safetensors, which `tg.load` reads back:

    model = build_model()
    model.load_state_dict(tg.load("examples/out/digits_mlp.safetensors")["model"])
"""

from _common import Timer, parse_args, plot_history, save_checkpoint, to_device, train_classifier

import tensorgrad as tg
from tensorgrad import nn
from tensorgrad.data import DataLoader
from tensorgrad.data.datasets import load_digits

NAME = "digits_mlp"


def build_model(hidden=256, dropout=0.2):
    return nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(hidden, 10))


def main(argv=None):
    def extra(parser):
        parser.add_argument("--lr", type=float, default=3e-3)
        parser.add_argument("--batch-size", type=int, default=32)

    args = parse_args(__doc__, epochs=30, argv=argv, extra=extra)
    train_set, test_set = load_digits(test_size=0.2, seed=0)
    train_set, test_set = to_device(train_set, args.device), to_device(test_set, args.device)
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True,
                              generator=tg.Generator().manual_seed(args.seed))
    test_loader = DataLoader(test_set, batch_size=512)

    model = build_model().to(args.device)
    opt = tg.optim.Adam(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = tg.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)
    with Timer() as timer:
        history = train_classifier(model, opt, train_loader, test_loader, args, NAME,
                                   sched=sched, label_smoothing=0.1)

    png = plot_history(history, args, NAME, "MLP on digits, Adam")
    ckpt = save_checkpoint({"model": model.state_dict(), "optimizer": opt.state_dict(),
                            "epochs": args.epochs}, args, NAME)
    print(f"{NAME}: test accuracy {history['test_acc'][-1]:.4f} after {args.epochs} epochs "
          f"in {timer.seconds:.1f} s on {args.device}; plot {png}, checkpoint {ckpt}")
    return model, history


if __name__ == "__main__":
    main()
