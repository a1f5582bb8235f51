"""Where arrays live: CPU checks and gathering a seed-sharded batch on one CPU device.

jaxlib's CPU LAPACK kernels (SVD, eigh) split a *batch* of matrices over XLA's intra-op thread
pool and block until it is done; when several CPU devices (or independent batched decompositions
on one device) run them at once, every pool thread can end up waiting and the process deadlocks
(seen with jax 0.10.2 on 2 cores). The analyses therefore go through points one at a time on CPU
(:func:`on_cpu`), and those that cannot gather a sharded batch on one CPU device first
(:func:`on_one_cpu_device`).

One point at a time on one device leaves the other cores idle, so :func:`map_points` runs such a
map on every device of a seed-sharded batch at once (``shard_map``; each device maps over its own
points, so every LAPACK call stays a single-matrix call that never waits on the shared pool): the
Newton polish, the Hessian classification and the NC metrics of a sweep chunk on 2 CPU devices
(2 cores) take about 0.6x the time of one device (issue 15; BENCHMARKS.md, "Sweeps").
:func:`seed_mesh_of` finds the mesh of such a batch.
"""

from __future__ import annotations

import jax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

__all__ = [
    "on_cpu",
    "on_one_cpu_device",
    "single_cpu_device",
    "device_summary",
    "seed_mesh_of",
    "map_points",
    "spread_points",
]


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


def seed_mesh_of(tree) -> Mesh | None:
    """The 1-D mesh of a batch spread along its leading axis over several CPU devices: every leaf
    a ``NamedSharding`` on the same 1-D mesh, split along axis 0 only, that axis a multiple of the
    mesh size. ``None`` for anything else (one device, numpy, other layouts, accelerators)."""
    leaves = jax.tree_util.tree_leaves(tree)
    if not leaves:
        return None
    sh = getattr(leaves[0], "sharding", None)
    if not isinstance(sh, NamedSharding) or len(sh.mesh.axis_names) != 1 or sh.mesh.size < 2:
        return None
    mesh, axis = sh.mesh, sh.mesh.axis_names[0]
    if any(d.platform != "cpu" for d in mesh.devices.flat):
        return None
    for x in leaves:
        s = getattr(x, "sharding", None)
        if (
            not isinstance(s, NamedSharding)
            or s.mesh != mesh
            or len(s.spec) < 1
            or s.spec[0] != axis
            or any(p is not None for p in s.spec[1:])
            or x.shape[0] % mesh.size
        ):
            return None
    return mesh


def spread_points(tree, mesh: Mesh | None):
    """``tree`` (leading point axis, a multiple of ``mesh.size``) split along that axis over
    ``mesh`` (``None``: unchanged)."""
    if mesh is None:
        return tree
    return jax.device_put(tree, NamedSharding(mesh, P(mesh.axis_names[0])))


def map_points(fn, xs, mesh: Mesh | None = None):
    """``jax.lax.map(fn, xs)``, one point at a time; with ``mesh`` (:func:`seed_mesh_of`) every
    device maps over its own points, all devices at once (``shard_map``; module docstring).
    Results are those of the plain map (tests/runs/test_device_parallel.py). Use inside ``jit``
    with the mesh as a static argument; ``fn`` may close over replicated values."""
    if mesh is None:
        return jax.lax.map(fn, xs)
    axis = mesh.axis_names[0]
    return jax.shard_map(
        lambda v: jax.lax.map(fn, v),
        mesh=mesh,
        in_specs=P(axis),
        out_specs=P(axis),
        check_vma=False,  # fn's conds mix per-point and replicated values
    )(xs)


def device_summary() -> dict:
    """Backend, device kind and counts of this process (for provenance records)."""
    dev = jax.devices()[0]
    return {
        "platform": jax.default_backend(),
        "device_kind": str(getattr(dev, "device_kind", dev)),
        "num_devices": jax.device_count(),
        "num_local_devices": jax.local_device_count(),
    }
