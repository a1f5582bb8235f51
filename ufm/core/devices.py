"""Where arrays live: CPU checks and gathering a seed-sharded batch on one CPU device.

jaxlib's CPU LAPACK kernels (SVD, eigh) split a *batch* of matrices over XLA's intra-op thread
pool and block until it is done; when several CPU devices (or independent batched decompositions
on one device) run them at once, every pool thread can end up waiting and the process deadlocks
(seen with jax 0.10.2 on 2 cores). The analyses therefore gather a sharded batch on one CPU device
(:func:`on_one_cpu_device`) and go through points one at a time on CPU (:func:`on_cpu`).
"""

from __future__ import annotations

import jax

__all__ = ["on_cpu", "on_one_cpu_device", "single_cpu_device", "device_summary"]


def _devices_of(x) -> set:
    return set(getattr(getattr(x, "sharding", None), "device_set", ()) or ())


def on_cpu(tree) -> bool:
    """Whether the arrays of ``tree`` live on CPU devices (numpy arrays count as CPU)."""
    for x in jax.tree_util.tree_leaves(tree):
        devs = _devices_of(x)
        if devs and any(d.platform != "cpu" for d in devs):
            return False
    return True


def single_cpu_device(tree) -> bool:
    """Whether every array of ``tree`` is on one and the same CPU device (or is numpy)."""
    devs = set()
    for x in jax.tree_util.tree_leaves(tree):
        devs |= _devices_of(x)
    return len(devs) <= 1 and all(d.platform == "cpu" for d in devs)


def on_one_cpu_device(tree):
    """``tree`` moved to one device if it is spread over several CPU devices (module docstring)."""
    devs = set()
    for x in jax.tree_util.tree_leaves(tree):
        devs |= _devices_of(x)
    if len(devs) > 1 and all(d.platform == "cpu" for d in devs):
        return jax.device_put(tree, min(devs, key=lambda d: d.id))
    return tree


def device_summary() -> dict:
    """Backend, device kind and counts of this process (for provenance records)."""
    dev = jax.devices()[0]
    return {
        "platform": jax.default_backend(),
        "device_kind": str(getattr(dev, "device_kind", dev)),
        "num_devices": jax.device_count(),
        "num_local_devices": jax.local_device_count(),
    }
