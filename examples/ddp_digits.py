"""Data-parallel training of the digits MLP on N MPI processes with DistributedDataParallel.

    pip install -e .[distributed,examples]
    mpiexec -n 2 python examples/ddp_digits.py                  # 2 processes, one machine
    mpiexec -n 2 python examples/ddp_digits.py --resume         # continue from the checkpoint
    python examples/ddp_digits.py                               # 1 process works too

Every rank builds the same model (rank 0's weights are broadcast when it is wrapped), reads
its share of each global batch through `tg.data.DistributedSampler`, and DDP averages the
gradients during backward, so N processes on a global batch B take the steps one process
takes on B. Rank 0 prints the accuracy and writes the checkpoint (model and optimizer state
dicts, epoch) to examples/out/ddp_digits.safetensors; every rank reads it with --resume.
"""

import argparse
import os
import time

import tensorgrad as tg
import tensorgrad.distributed as dist
import tensorgrad.nn.functional as F
from tensorgrad import nn
from tensorgrad.data import DataLoader, DistributedSampler
from tensorgrad.data.datasets import load_digits

CKPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out", "ddp_digits.safetensors")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=64, help="global batch (all ranks)")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help=f"continue from {CKPT}")
    p.add_argument("--checkpoint", default=CKPT)
    return p.parse_args(argv)


def accuracy(model, dataset):
    x, y = dataset.tensors
    with tg.no_grad():
        return (model(x).argmax(dim=1) == y).float().mean().item()


def main(argv=None):
    args = parse_args(argv)
    dist.init_process_group(backend="mpi")
    rank, world = dist.get_rank(), dist.get_world_size()
    if args.batch_size % world:
        raise SystemExit(f"--batch-size {args.batch_size} does not split over {world} ranks")
    train_set, test_set = load_digits(test_size=0.2, seed=0)
    sampler = DistributedSampler(train_set, shuffle=True, seed=args.seed, drop_last=True)
    loader = DataLoader(train_set, batch_size=args.batch_size // world, sampler=sampler,
                        drop_last=True)

    tg.manual_seed(args.seed)
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10))
    model = nn.parallel.DistributedDataParallel(model)
    opt = tg.optim.Adam(model.parameters(), lr=args.lr)
    start = 0
    if args.resume:
        state = tg.load(args.checkpoint)            # every rank reads rank 0's file
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start = state["epoch"]

    t0 = time.perf_counter()
    for epoch in range(start, start + args.epochs):
        sampler.set_epoch(epoch)                    # the same new order on every rank
        for x, y in loader:
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()  # gradients averaged over the ranks
            opt.step()
    seconds = time.perf_counter() - t0

    if rank == 0:
        os.makedirs(os.path.dirname(os.path.abspath(args.checkpoint)), exist_ok=True)
        tg.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                 "epoch": start + args.epochs}, args.checkpoint)
        print(f"ddp_digits: {world} process(es), epochs {start}-{start + args.epochs}, test "
              f"accuracy {accuracy(model.module, test_set):.4f} in {seconds:.1f} s; "
              f"checkpoint {args.checkpoint}")
    dist.barrier()                                  # the file is complete before anyone exits
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
