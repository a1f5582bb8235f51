"""Seed-axis sharding, chunk sizing and multi-host setup for sweeps.

Seeds are independent, so a sweep is data-parallel over the leading seed axis of the batched
parameters. Within one process the seed axis of a chunk is sharded over the local devices with
``NamedSharding(Mesh(devices, ("seeds",)), P("seeds"))``; the jitted, vmapped optimiser then
runs SPMD: XLA partitions it along the batch axis and each device steps its own seeds with no
collective (only the host's per-chunk status check gathers a few bytes). The chunk is padded to
a multiple of the device count by repeating its last seed, and the padding is dropped
afterwards. A seed's start is ``fold_in(key(base), seed)`` (:func:`ufm.init_batch`), so results
do not depend on the chunk, the device count or the process count.

Multi-host design: **per-process local meshes**, not one global mesh. After
``jax.distributed.initialize`` each process owns the seeds ``seed % process_count ==
process_index`` of every configuration, shards its chunks over ``jax.local_devices()`` and
writes its own result files. Why not a global mesh with ``jax.make_array_from_process_local_data``:

* the optimiser is a host loop over jitted chunks that reads per-seed status to stop early and
  returns NumPy arrays; a global array is not fully addressable in any one process, so every
  such read would become a cross-host all-gather, and every process would have to issue the
  same jitted calls in lock step (same configurations, same chunk count, same early stop), so
  one slow or dead host would stall all the others;
* seeds need no communication, so a global mesh buys nothing but coupling; with local meshes
  the hosts only meet at the final barrier, a host that dies loses only its chunk in flight,
  and a rerun with another process count resumes from the same store;
* the static seed ownership needs no scheduler and no agreement on the store's state: each
  process skips its own finished seeds, whatever earlier runs (and process counts) wrote.

``jax.distributed`` still provides process discovery (index, count, global device list),
cluster auto-detection (SLURM, Open MPI, ...; ``coordinator="auto"``), the final
``sync_global_devices`` barrier, and failure detection (the coordination service stops the
other processes if one dies). CPU processes use the gloo collectives for that barrier.
"""

from __future__ import annotations

import math

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from ..core.jitting import QUICK_COMPILE
from ..core.model import init_batch, loss

__all__ = [
    "SEED_AXIS",
    "local_devices",
    "seed_mesh",
    "seed_sharding",
    "shard_seeds",
    "pad_seeds",
    "process_seeds",
    "split_chunks",
    "balanced_chunks",
    "bytes_per_seed",
    "chunk_size",
]

SEED_AXIS = "seeds"
DEFAULT_BUDGET = 256 * 2**20  # bytes per device when neither a chunk size nor a budget is given
DEFAULT_MAX_PER_DEVICE = 1024  # seeds per device per chunk by default (progress/resume grain)


def local_devices(num: int | None = None) -> list:
    """The first ``num`` devices of this process (all of them when ``None``)."""
    devs = jax.local_devices()
    if num is None:
        return devs
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 1:
        raise ValueError(f"devices must be an integer >= 1, got {num!r}")
    if num > len(devs):
        hint = (
            " (on CPU, set jax.config.update('jax_num_cpu_devices', N) before JAX starts, "
            "or pass --devices N to `ufm sweep run`)"
            if devs[0].platform == "cpu"
            else ""
        )
        raise ValueError(
            f"devices={num} but this process has {len(devs)} {devs[0].platform} device(s){hint}"
        )
    return devs[:num]


def seed_mesh(devices=None) -> Mesh:
    """A 1-D :class:`jax.sharding.Mesh` with axis ``"seeds"`` over ``devices`` (or a count).

    >>> dict(seed_mesh(1).shape)
    {'seeds': 1}
    """
    if devices is None or isinstance(devices, (int, np.integer)):
        devices = local_devices(devices)
    return Mesh(np.asarray(devices), (SEED_AXIS,))


def seed_sharding(mesh: Mesh) -> NamedSharding:
    """``NamedSharding(mesh, P("seeds"))``: leading axis split over the mesh."""
    return NamedSharding(mesh, P(SEED_AXIS))


def shard_seeds(tree, mesh: Mesh):
    """Place every array leaf of ``tree`` (leading seed axis) sharded over ``mesh``."""
    sharding = seed_sharding(mesh)
    return jax.tree_util.tree_map(lambda x: jax.device_put(x, sharding), tree)


def pad_seeds(seeds, multiple: int) -> np.ndarray:
    """Pad ``seeds`` to a multiple of ``multiple`` by repeating the last seed.

    Copies of a real seed behave exactly like it, so padding never adds a failure mode nor
    delays the optimiser's early stop; drop ``[len(seeds):]`` from the results.

    >>> pad_seeds([3, 4, 5], 4).tolist()
    [3, 4, 5, 5]
    """
    seeds = np.asarray(seeds, dtype=np.int64)
    if seeds.ndim != 1 or seeds.size == 0:
        raise ValueError("seeds must be a non-empty 1-D sequence")
    extra = -seeds.size % multiple
    return np.concatenate([seeds, np.full(extra, seeds[-1])]) if extra else seeds


def process_seeds(seeds, process_index: int, process_count: int) -> np.ndarray:
    """The seeds owned by a process: those with ``seed % process_count == process_index``.

    >>> process_seeds(range(7), 1, 3).tolist()
    [1, 4]
    """
    seeds = np.asarray(seeds, dtype=np.int64)
    return seeds[seeds % process_count == process_index]


def balanced_chunks(seeds, size: int, multiple: int = 1) -> tuple[list[np.ndarray], int]:
    """Consecutive chunks of at most ``size`` seeds, as even as possible, and their common width.

    ``m = ceil(n / size)`` chunks of ``width = ceil(n / m)`` seeds (rounded up to ``multiple``,
    the device count; ``width <= size`` when ``size`` is a multiple of it), the last one shorter
    by less than ``m * multiple``: padded to ``width`` (:func:`ufm.runs.run_chunk`'s ``pad_to``)
    every chunk of a configuration has one shape, so it is compiled once instead of twice (the
    ``d = K`` sweep: 4 x 2048 + 1825 -> 4 x 2004 + 2001, 3 padded starts instead of a second
    compilation of every stage).

    >>> chunks, width = balanced_chunks(range(9), 4)
    >>> [c.tolist() for c in chunks], width
    ([[0, 1, 2], [3, 4, 5], [6, 7, 8]], 3)
    """
    seeds = np.asarray(seeds, dtype=np.int64)
    if seeds.size == 0:
        return [], 0
    m = -(-seeds.size // size)
    width = -(-seeds.size // m)
    width = -(-width // multiple) * multiple
    return split_chunks(seeds, width), width


def split_chunks(seeds, size: int) -> list[np.ndarray]:
    """Consecutive chunks of at most ``size`` seeds.

    >>> [c.tolist() for c in split_chunks(range(5), 2)]
    [[0, 1], [2, 3], [4]]
    """
    seeds = np.asarray(seeds, dtype=np.int64)
    return [seeds[i : i + size] for i in range(0, seeds.size, size)]


def _shape_key(spec):
    """What the footprint depends on: the spec's static fields and its leaves' shapes and dtypes
    (not the lambda values: every configuration of one shape family shares one probe)."""
    leaves, treedef = jax.tree_util.tree_flatten(spec)
    return treedef, tuple((np.shape(x), np.result_type(x).str) for x in leaves)


_FOOTPRINTS: dict = {}


def _bytes_per_seed(spec, extra_copies: int, probe: int) -> int:
    key = (_shape_key(spec), extra_copies, probe)
    if key not in _FOOTPRINTS:
        if len(_FOOTPRINTS) >= 64:
            _FOOTPRINTS.clear()
        _FOOTPRINTS[key] = _measure_bytes_per_seed(spec, extra_copies, probe)
    return _FOOTPRINTS[key]


def _measure_bytes_per_seed(spec, extra_copies: int, probe: int) -> int:
    shapes = jax.eval_shape(lambda: init_batch(spec, jax.random.key(0), probe))
    param_bytes = (
        sum(math.prod(x.shape) * x.dtype.itemsize for x in jax.tree_util.tree_leaves(shapes))
        // probe
    )
    # the spec is an argument (its lambdas traced: one program for every lambda), compiled at
    # XLA's optimisation level 0 (an estimate of buffer sizes; compile time is what counts here)
    step = jax.jit(jax.vmap(jax.value_and_grad(loss, argnums=1), in_axes=(None, 0)))
    try:
        mem = step.lower(spec, shapes).compile(QUICK_COMPILE).memory_analysis()
        used = mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes
        step_bytes = used // probe
    except Exception:  # memory analysis unsupported by this backend: a generous estimate
        step_bytes = 8 * param_bytes
    return int(step_bytes + extra_copies * param_bytes)


def bytes_per_seed(spec, extra_copies: int = 4, probe: int = 8) -> int:
    """Device memory one seed needs in the optimiser, measured by XLA.

    The compiled memory footprint (arguments + outputs + temporaries) of one vmapped
    ``value_and_grad`` step per seed, from ``compile().memory_analysis()``, plus
    ``extra_copies`` parameter copies for the optimiser state (Adam holds two) and the
    last-finite snapshot.
    """
    return _bytes_per_seed(spec, extra_copies, probe)


def chunk_size(
    spec,
    num_devices: int,
    *,
    seeds_per_chunk: int | None = None,
    memory_budget: int | None = None,
    num_seeds: int | None = None,
) -> int:
    """Seeds per chunk: a multiple of ``num_devices``.

    ``seeds_per_chunk`` is taken as given (rounded up to a multiple of the device count);
    otherwise ``memory_budget`` bytes *per device* (default 256 MiB) divided by
    :func:`bytes_per_seed`, at most 1024 seeds per device by default (the grain of progress and
    of what a killed run loses), and never more than ``num_seeds`` rounded up.
    """
    if seeds_per_chunk is not None:
        size = seeds_per_chunk
    else:
        budget = DEFAULT_BUDGET if memory_budget is None else memory_budget
        per_device = budget // bytes_per_seed(spec)
        if per_device < 1:
            raise ValueError(
                f"memory_budget={budget} bytes per device is below the "
                f"{bytes_per_seed(spec)} bytes one seed needs"
            )
        if memory_budget is None:
            per_device = min(per_device, DEFAULT_MAX_PER_DEVICE)
        size = per_device * num_devices
    if num_seeds is not None:
        size = min(size, num_seeds)
    return max(num_devices, -(-size // num_devices) * num_devices)
