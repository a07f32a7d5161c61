"""tg.data (also `tg.utils.data`, as `torch.utils.data`): datasets, samplers, the DataLoader,
and ready-made datasets in `tg.data.datasets`.

Speaks only Tensor: nothing here imports NumPy or CuPy (tests/test_layering.py checks).
"""

from . import datasets
from .dataloader import (
    BatchSampler,
    DataLoader,
    RandomSampler,
    Sampler,
    SequentialSampler,
    SubsetRandomSampler,
    default_collate,
    default_convert,
)
from .dataset import ConcatDataset, Dataset, Subset, TensorDataset, random_split
from .distributed import DistributedSampler

__all__ = [
    "BatchSampler", "ConcatDataset", "DataLoader", "Dataset", "DistributedSampler",
    "RandomSampler", "Sampler", "SequentialSampler", "Subset", "SubsetRandomSampler",
    "TensorDataset", "datasets", "default_collate", "default_convert", "random_split",
]
