"""Stable configuration hashes of a sweep: the canonical JSON of a configuration and its SHA-256.

A configuration's hash is the SHA-256 (first 16 hex digits) of the canonical JSON (sorted keys,
shortest float repr, no NaN) of the model name, the validated spec fields, the optimiser settings,
the analyses with their options and the seed base / init scale (see :mod:`ufm.runs.sweep_spec`
for what is hashed and what is not).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping

import numpy as np

from ..optim.settings import OptimizerSettings


def spec_fields(spec) -> dict:
    """The fields of a spec as plain Python values (``as_dict`` when the spec has one)."""
    d = spec.as_dict() if hasattr(spec, "as_dict") else dataclasses.asdict(spec)
    return {k: _plain(v) for k, v in d.items()}


def config_hash(
    model: str, spec, optimizer: OptimizerSettings, analyses: tuple, base_seed: int, init_scale
) -> str:
    """Stable 16-hex-digit SHA-256 of the canonical JSON of a configuration."""
    doc = {
        "model": model,
        "spec": spec_fields(spec),
        "optimizer": optimizer.hash_dict(),
        "analyses": {k: dict(v) for k, v in analyses},
        "seeds": {"base": base_seed, "init_scale": init_scale},
    }
    blob = json.dumps(_plain(doc), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _plain(v):
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, np.ndarray):
        return _plain(v.tolist())
    if isinstance(v, np.generic):
        return v.item()
    return v


def _from_toml(v):
    """TOML arrays become tuples (hashable, like spec fields)."""
    return tuple(_from_toml(x) for x in v) if isinstance(v, list) else v
