"""Where the seeds of :func:`ufm.optimize` run: the 1-D seed mesh over devices, padding, and
cache-sized seed blocks on CPU.

* :func:`seed_mesh`: keep a batch already sharded along the seed axis, or spread a single-device
  batch over the local devices of its platform (on CPU at most one per core, never fewer than
  ``MIN_SEEDS_PER_DEVICE`` seeds per device); :func:`spread` pads the seed axis by repeating the
  last seed and shards it.
* :func:`seed_block_size`: ``seed_block="auto"`` on CPU runs the chunk over blocks of seeds
  (``lax.map`` around ``vmap(scan)``) so that a block's parameters stay in cache (constants
  below, each with its measurement).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

__all__ = [
    "SEED_AXIS",
    "seed_mesh",
    "spread",
    "seed_block_size",
    "devices_of",
    "positive_int",
]

#: Name of the seed axis of the 1-D device mesh.
SEED_AXIS = "seeds"

#: ``seed_block="auto"`` on CPU: blocks of about this many bytes of parameters, between
#: ``AUTO_BLOCK_MIN`` and ``AUTO_BLOCK_MAX`` seeds. Measured (benchmarks/perf.py, 2-core EPYC, K = d
#: = 10): n = 100 float32 blocks of 8-32 seeds beat 51 by 1.2x and plain vmap by 3x; float64 8
#: seeds beat 51 by 1.4x; n = 10 float32 16 seeds beat 64 and plain vmap by 1.8x.
AUTO_BLOCK_BYTES = 256 << 10
AUTO_BLOCK_MIN = 8
AUTO_BLOCK_MAX = 16

#: Seeds of fewer than this many bytes of parameters are "tiny" (the d = K sweep: K = d = 4,
#: N = 20, 768 bytes in float64): a block's loop overhead outweighs its work, so their blocks may
#: hold up to ``AUTO_BLOCK_MAX_TINY`` seeds. Measured (``python benchmarks/sweep_stages.py
#: --seed-blocks 16,128,256,None [--size 4008]``: 2 CPU devices, 2-core EPYC, momentum, 2004
#: seeds of the d = K sweep): blocks of 16 0.87 s, 128 0.74 s, 256 0.71 s, one vmap 0.68 s;
#: 4008 seeds: 128 1.42 s, 341 1.36 s, one vmap 1.66 s.
TINY_SEED_BYTES = 4 << 10
AUTO_BLOCK_MAX_TINY = 512

#: ``seed_block="auto"`` runs one ``vmap`` (no blocks) when a device's seeds hold at most this many
#: bytes of parameters: they stay in cache anyway, and the ``lax.map`` around the scan doubles the
#: compile time (d = K sweep chunk: 3.7 s against 7.9 s).
AUTO_VMAP_BYTES = 1 << 20

#: ``devices="auto"`` gives every device at least this many seeds (fewer devices otherwise).
MIN_SEEDS_PER_DEVICE = 32


def devices_of(tree) -> set:
    out = set()
    for x in jax.tree_util.tree_leaves(tree):
        out |= set(getattr(getattr(x, "sharding", None), "device_set", ()) or ())
    return out


def seed_mesh(params, devices):
    """``(mesh, home)``: the 1-D seed mesh to ``shard_map`` over (``None``: no ``shard_map``) and,
    when a single-device input is spread over it, the input's device (``None`` otherwise)."""
    leaves = jax.tree_util.tree_leaves(params)
    num = leaves[0].shape[0]
    devs = devices_of(params)
    if len(devs) > 1:  # already spread: keep its layout
        sh = getattr(leaves[0], "sharding", None)
        same = all(getattr(x, "sharding", None) == sh for x in leaves)
        if (
            isinstance(sh, NamedSharding)
            and same
            and len(sh.mesh.axis_names) == 1
            and len(sh.spec) >= 1
            and sh.spec[0] == sh.mesh.axis_names[0]
            and all(p is None for p in sh.spec[1:])
            and num % sh.mesh.size == 0
        ):
            return Mesh(sh.mesh.devices, (SEED_AXIS,)), None
        return None, None  # another layout: plain vmap, partitioned by XLA
    if devices is None:
        return None, None
    home = next(iter(devs)) if devs else jax.local_devices()[0]
    local = [d for d in jax.local_devices() if d.platform == home.platform]
    if devices == "auto":
        count = len(local)
        if home.platform == "cpu":
            count = min(count, os.cpu_count() or 1)
    else:
        count = min(positive_int("devices", devices), len(local))
    count = max(1, min(count, num // MIN_SEEDS_PER_DEVICE))
    if count <= 1:
        return None, None
    chosen = [home] + [d for d in local if d != home][: count - 1]
    return Mesh(np.asarray(chosen), (SEED_AXIS,)), home


def spread(params, mesh):
    """Pad the seed axis to a multiple of the mesh size (repeating the last seed) and shard it."""
    size = mesh.size
    num = jax.tree_util.tree_leaves(params)[0].shape[0]
    extra = -num % size
    if extra:
        params = jax.tree_util.tree_map(
            lambda x: jnp.concatenate([x, jnp.repeat(x[-1:], extra, axis=0)]), params
        )
    return jax.device_put(params, NamedSharding(mesh, P(SEED_AXIS)))


def seed_block_size(params, seed_block, mesh=None):
    if seed_block is None:
        return None
    leaves = jax.tree_util.tree_leaves(params)
    num = leaves[0].shape[0] // (1 if mesh is None else mesh.size)  # seeds per device
    if seed_block != "auto":
        return min(positive_int("seed_block", seed_block), num)
    per_seed = sum(x.size // leaves[0].shape[0] * x.dtype.itemsize for x in leaves)
    devs = devices_of(params)
    on_cpu = all(d.platform == "cpu" for d in devs)
    if not on_cpu or (mesh is None and len(devs) > 1):
        return None
    if num * per_seed <= AUTO_VMAP_BYTES:
        return None
    top = AUTO_BLOCK_MAX if per_seed >= TINY_SEED_BYTES else AUTO_BLOCK_MAX_TINY
    block = int(np.clip(AUTO_BLOCK_BYTES // per_seed, AUTO_BLOCK_MIN, top))
    return None if num <= block else block


def positive_int(name, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)
