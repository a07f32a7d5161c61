"""(being written)"""

METHODS = {}
__all__ = []
