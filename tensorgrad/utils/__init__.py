"""tg.utils: `tg.utils.data` is `tg.data`, so `from tensorgrad.utils.data import DataLoader`
works as `from torch.utils.data import DataLoader` does.

Re-exports only.
"""

import sys

from .. import data

# Registered as a submodule too: `import tensorgrad.utils.data` looks in sys.modules first.
sys.modules[__name__ + ".data"] = data

__all__ = ["data"]
