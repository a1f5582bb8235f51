"""Starting points of one configuration, keyed by ``(source, seed)``.

Sources: ``random`` starts (:func:`ufm.init_batch`, seed ``i`` from ``fold_in(key(base), i)``),
``planted`` starts (for systems with the ``planted`` hook, :class:`ufm.core.PlantedStarts`: a random
start restricted to an invariant subspace of dimension ``d'``, e.g. the coordinate subspace
``R^{d'}`` of the UFM, where gradient descent converges to the embedded ``d'``-dimensional optimum,
a planted saddle; planted start ``i`` has ``d' = dims(spec)[i % len(dims)]`` and its own key
``fold_in(fold_in(key(base), 1), i)``) and the ``origin`` (all parameters zero). A start depends
only on its key, never on its batch, chunk, device or process.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from ..core.model import init_batch
from ..core.registry import system_of
from ..core.validation import SpecError, check_int

__all__ = ["SOURCES", "StartSettings", "start_keys", "start_dims", "make_starts"]

SOURCES = ("random", "planted", "origin")


@dataclasses.dataclass(frozen=True)
class StartSettings:
    """Starting points besides the random ones: ``planted_per_dim`` planted starts per reduced
    dimension ``d'`` of the system's ``planted`` hook (for the UFM :func:`ufm.saddle_dims`) and the
    ``origin``."""

    planted_per_dim: int = 0
    origin: bool = False

    def __post_init__(self):
        check_int("planted_per_dim", self.planted_per_dim, 0)
        if not isinstance(self.origin, bool):
            raise ValueError(f"origin must be true or false, got {self.origin!r}")

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def planted_hook(spec):
    """The system's :class:`ufm.core.PlantedStarts`, or a ``SpecError`` naming the system."""
    system = system_of(spec)
    if system.planted is None:
        raise SpecError(
            f"starts.planted_per_dim: planted starts are not available for the "
            f"{system.name!r} system (it registers no 'planted' hook)"
        )
    return system.planted


def start_keys(spec, seeds, starts: StartSettings = StartSettings()):
    """All start keys of one configuration: ``(source, seed)`` arrays, in the canonical order
    (random ``seeds`` (an array, or a count), then planted ``0..P-1``, then the origin).

    ``P = planted_per_dim * len(dims(spec))`` (``0`` when there is no reduced dimension).
    """
    seeds = np.arange(seeds) if np.ndim(seeds) == 0 else np.asarray(seeds, np.int64)
    parts_src, parts_seed = [np.full(seeds.size, "random", dtype=object)], [seeds]
    if starts.planted_per_dim:
        num = starts.planted_per_dim * len(planted_hook(spec).dims(spec))
        parts_src.append(np.full(num, "planted", dtype=object))
        parts_seed.append(np.arange(num, dtype=np.int64))
    if starts.origin:
        parts_src.append(np.array(["origin"], dtype=object))
        parts_seed.append(np.zeros(1, np.int64))
    return np.concatenate(parts_src), np.concatenate(parts_seed).astype(np.int64)


def start_dims(spec, source, seed) -> np.ndarray:
    """The ``dim`` column: the full dimension for random starts (the ``planted`` hook's
    ``full_dim``, ``-1`` for systems without one), ``d'`` for planted starts, ``0`` for the
    origin."""
    source, seed = np.asarray(source, dtype=object), np.asarray(seed, np.int64)
    planted_starts = system_of(spec).planted
    full = planted_starts.full_dim(spec) if planted_starts is not None else -1
    dims = np.full(source.shape, full, np.int64)
    planted = source == "planted"
    if planted.any():
        sd = np.asarray(planted_hook(spec).dims(spec), np.int64)
        if not sd.size:
            raise SpecError(
                "planted starts requested but this configuration has no reduced "
                "dimension (collapse-to-zero regime, or d too small)"
            )
        dims[planted] = sd[seed[planted] % sd.size]
    dims[source == "origin"] = 0
    return dims


def make_starts(spec, source, seed, *, base_seed: int = 0, init_scale=None, host: bool = False):
    """Starting parameters for the keys ``(source[i], seed[i])`` (module docstring).

    Returns ``(params0, meta)``: the batch (leading axis in the order of the keys) and ``meta``
    with the columns ``source``, ``seed`` and ``dim`` (:func:`start_dims`). ``host=True``: the
    batch as NumPy arrays, for a caller that places it itself (a sharded placement of a host
    array compiles nothing; of a device array, a small slicing program per shape).
    """
    source = np.asarray(source, dtype=object)
    seed = np.asarray(seed, np.int64)
    if source.shape != seed.shape or source.ndim != 1 or not source.size:
        raise ValueError("source and seed must be non-empty 1-D arrays of the same length")
    unknown = set(source.tolist()) - set(SOURCES)
    if unknown:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}; got {sorted(unknown)}")
    dims = start_dims(spec, source, seed)
    key = jax.random.key(base_seed)
    groups = []
    # every group draws a batch of the largest group's size (then cut): one compiled init
    width = max(int(np.sum(source == name)) for name in ("random", "planted"))

    def draw(k, idx):
        padded = np.zeros(width, np.int64)
        padded[: idx.size] = seed[idx]
        p = init_batch(spec, k, seeds=padded, scale=init_scale)
        return jax.tree_util.tree_map(lambda x: np.asarray(x)[: idx.size], p)

    for name in dict.fromkeys(source.tolist()):
        idx = np.flatnonzero(source == name)
        if name == "random":
            p = draw(key, idx)
        elif name == "planted":
            p = draw(jax.random.fold_in(key, 1), idx)
            p = planted_hook(spec).embed(spec, p, dims[idx])
        else:
            zeros = np.zeros(idx.size, np.int64)
            shapes = jax.eval_shape(lambda: init_batch(spec, key, seeds=zeros, scale=init_scale))
            p = jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype), shapes)
        groups.append((idx, p))
    # assembled on the host (NumPy): no small XLA programs to compile per shape
    if len(groups) == 1:
        params = groups[0][1]
    else:
        order = np.concatenate([idx for idx, _ in groups])
        inverse = np.empty_like(order)
        inverse[order] = np.arange(order.size)
        params = jax.tree_util.tree_map(
            lambda *xs: np.concatenate([np.asarray(x) for x in xs])[inverse],
            *(p for _, p in groups),
        )
    params = jax.tree_util.tree_map(np.asarray if host else jnp.asarray, params)
    return params, {"source": source, "seed": seed, "dim": dims}
