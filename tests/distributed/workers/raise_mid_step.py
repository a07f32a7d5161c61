"""Run under `mpiexec -n 2`: the last rank raises in the middle of a training step while the
others wait in an all_reduce that will never be matched. init_process_group's excepthook must
print that rank's traceback and abort the whole job (non-zero exit) instead of a hang.

Usage: python raise_mid_step.py
"""

import tensorgrad as tg
import tensorgrad.distributed as dist


def train_step(step, grad):
    if step == 2 and dist.get_rank() == dist.get_world_size() - 1:
        raise ValueError(f"deliberate failure on rank {dist.get_rank()} at step {step}")
    dist.all_reduce(grad, op=dist.ReduceOp.AVG)


if __name__ == "__main__":
    dist.init_process_group("mpi")
    grad = tg.ones(4)
    for step in range(4):
        train_step(step, grad)
    dist.destroy_process_group()
