"""What a worker pod offers its gateway: its own limits, not the node's.

``sandpool worker --gateway`` offers the host's CPUs and memory unless told otherwise, and in
a pod the host is the whole node; the pod's limits (``poolSizing``) go on its command line.
"""

from __future__ import annotations

from decimal import Decimal

from sandpool.config.models import PoolSizing

__all__ = ["capacity_args", "quantity_value"]

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {s: Decimal(f"1e{e}") for s, e in
            [("n", -9), ("u", -6), ("m", -3), ("k", 3), ("M", 6), ("G", 9), ("T", 12),
             ("P", 15), ("E", 18)]}  # fmt: skip


def quantity_value(text: str) -> Decimal:
    """A Kubernetes quantity (already validated by the configuration) as a number."""
    for suffix, factor in _BINARY.items():
        if text.endswith(suffix):
            return Decimal(text[: -len(suffix)]) * factor
    if text and text[-1] in _DECIMAL:
        return Decimal(text[:-1]) * _DECIMAL[text[-1]]
    return Decimal(text)  # plain, or with an exponent (1e3)


def capacity_args(sizing: PoolSizing) -> list[str]:
    """``--cpu CORES --memory BYTES`` for the worker's limits."""
    cores = quantity_value(sizing.default_worker_cpu).normalize()
    memory = int(quantity_value(sizing.default_worker_memory))
    return ["--cpu", format(cores, "f"), "--memory", str(memory)]
