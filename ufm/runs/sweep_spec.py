"""Sweep specifications: TOML grids over problem specs, seeds, optimiser and analyses.

A sweep spec describes a grid of problem configurations, each run from ``seeds.count`` random
starts, with one optimiser setting and a list of analyses, e.g. (``experiments/sweeps/tiny.toml``)::

    name = "tiny"
    model = "ufm"                 # a sweepable registered system (model_registry)
    analyses = ["closed_form", "metrics"]  # keys of the analysis registry (register_analysis)
    out = "ufm-results/tiny"      # output folder; relative to the working directory

    [grid]                        # a value, or a list of values to sweep; the cartesian product
    K = 3
    n = 2
    d = 3
    loss = ["ce", "mse"]
    bias = ["none", "free"]

    [seeds]
    count = 24                    # seeds 0..count-1; seed i starts from fold_in(key(base), i)
    base = 0

    [starts]                      # optional; default: random starts only
    planted_per_dim = 2           # planted-saddle starts per d' in ufm.saddle_dims (model "ufm")
    origin = true                 # the origin W = H = 0

    [optimizer]                   # ufm.make_optimizer(name, learning_rate, **rest) + optimize()
    name = "momentum"
    learning_rate = 0.5
    beta = 0.9
    max_steps = 2000
    tol = 1e-8
    chunk = 250
    polish = "auto"               # float64: Newton/L-BFGS, float32: none; or newton, lbfgs, none
    polish_tol = 1e-10            # default 1e-10 (float64), 1e-5 (float32)

    [chunking]
    seeds_per_chunk = 8           # at most, split evenly; or memory_budget = "1 GiB" (per device)

Models: ``"ufm"`` (:class:`ufm.UFMSpec`: ``K, n, d, loss, bias, lambda_W, lambda_H, lambda_b,
dtype``) and ``"deep_ufm"`` (:class:`ufm.DeepUFMSpec`: ``K, n, L, widths, activation, loss,
lambda_H1, lambda_W, bias, lambda_b, dtype``; ``experiments/sweeps/deep_tiny.toml``). Analyses
(:mod:`ufm.runs.analyses`): ``closed_form`` (``f - f*``; the deep UFM's reference is
:func:`ufm.deep.dnc_loss`), ``metrics`` (NC or DNC metrics), ``hessian``
(:func:`ufm.classify_batch`,
for the models it has rules for; options in ``[analyses.hessian]``, e.g. ``method = "dense"``).
The pipeline of every
chunk is :func:`ufm.run_points`: optimise, polish, analyse.

Starts: every configuration runs ``seeds.count`` random starts (``source = "random"``, seeds
``0..count-1``), ``planted_per_dim * len(saddle_dims(spec))`` planted starts (``source =
"planted"``, seeds ``0..P-1``, ``dim = d'``) and the origin (``source = "origin"``, seed 0); see
:func:`ufm.make_starts`. A result row is keyed by ``(config_hash, source, seed)``.

Grid rules: ``[grid]`` is one cartesian product; ``[[grid]]`` repeated is a union of products (for
combinations that only make sense together, e.g. ``bias = "regularized"`` with ``lambda_b > 0``). A
grid table may also set ``model``. A list always means "sweep these values"; a list-valued field is
swept with a list of lists (the UFM's class sizes: ``n = [[10, 10, 2, 2], [10, 10, 5, 5]]``, while
``n = [4, 8]`` sweeps two balanced sizes). A system's ``prepare_spec`` hook attaches host-side data
to every valid point once (the UFM: the convex reference value for class sizes without a closed
form); the hash covers the spec before it. Every grid point is validated up front by constructing
its spec: invalid combinations (``lambda_b`` without ``bias = "regularized"``) are returned as
:class:`InvalidPoint` records naming the key, before any compute; malformed specs (unknown key,
wrong type, empty list, negative seeds) raise :class:`~ufm.SpecError` naming the key and the
expected form.

Each configuration gets a stable hash: the SHA-256 of the canonical JSON (sorted keys, shortest
float repr) of the model name, the validated spec fields, the optimiser settings, the analyses
with their options and the seed base / init scale (the polish settings only when ``polish`` is
not ``"none"``). The seed count, the ``[starts]`` and the chunking are not hashed, so raising
``seeds.count`` or ``starts.planted_per_dim`` extends a finished sweep instead of starting a new
one.

The parts: this module holds the spec records and the grid expansion; the TOML validation is in
:mod:`ufm.runs.sweep_toml`, the hashes in :mod:`ufm.runs.hashing`, byte sizes and the seed-count
limit in :mod:`ufm.runs.memory_limits` (their public names are importable from here too).

Registries: :func:`model_registry` maps a ``model`` name to the spec type of a sweepable
registered system (:func:`ufm.core.register_system`; the fields of a dataclass spec are the grid
keys); :func:`register_analysis` adds a per-point analysis, a
function ``fn(spec, result, **options) -> {column: array of shape (S,)}`` of the spec and the
:class:`ufm.OptimizeResult` of a chunk after the polish stage.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..core.registry import get_system
from ..core.validation import SpecError
from ..optim.settings import OptimizerSettings as OptimizerSettings
from .analyses import analysis_check
from .analyses import analysis_registry as analysis_registry
from .hashing import _from_toml, _plain
from .hashing import config_hash as config_hash
from .hashing import spec_fields as spec_fields
from .memory_limits import BYTES_PER_START as BYTES_PER_START
from .memory_limits import check_seed_count as check_seed_count
from .memory_limits import parse_bytes as parse_bytes
from .starts import StartSettings as StartSettings
from .sweep_toml import model_registry as model_registry
from .sweep_toml import parse_sweep_document

try:  # Python >= 3.11
    import tomllib as _toml
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as _toml

__all__ = [
    "SweepSpec",
    "SweepConfig",
    "InvalidPoint",
    "OptimizerSettings",
    "StartSettings",
    "load_sweep_spec",
    "model_registry",
    "analysis_registry",
    "config_hash",
    "parse_bytes",
]


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """One valid grid point: its model, constructed spec, swept values and stable hash."""

    index: int
    model: str
    spec: Any
    point: dict  # the grid values of this point
    hash: str
    label: str = ""  # ``key=value`` of the keys that vary over the sweep


@dataclasses.dataclass(frozen=True)
class InvalidPoint:
    """A grid point whose spec could not be constructed, with the error naming the key."""

    index: int
    model: str
    point: dict
    error: str

    def __str__(self) -> str:
        where = " ".join(f"{k}={v!r}" for k, v in self.point.items())
        return f"grid point {self.index} ({where}): {self.error}"


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """A validated sweep specification (see the module docstring for the TOML form)."""

    name: str
    model: str
    grid: tuple  # tuple of sub-grids, each a tuple of (key, tuple of values)
    num_seeds: int
    base_seed: int = 0
    init_scale: float | None = None
    optimizer: OptimizerSettings = OptimizerSettings()
    analyses: tuple = ()  # tuple of (name, sorted (key, value) option pairs)
    starts: StartSettings = StartSettings()  # planted and origin starts (not hashed)
    seeds_per_chunk: int | None = None
    memory_budget: int | None = None
    out: str | None = None
    text: str | None = None  # the TOML source, kept for provenance

    @classmethod
    def from_dict(cls, raw: Mapping, *, name: str = "sweep", text: str | None = None):
        """Validate a parsed TOML document (raises ``SpecError`` naming the key)."""
        return cls(**parse_sweep_document(raw, name, text))

    def expand(self) -> tuple[list[SweepConfig], list[InvalidPoint]]:
        """All grid points: valid configurations (deduplicated by hash) and invalid ones."""
        configs, invalid, seen = [], [], set()
        index = 0
        for sub in self.grid:
            sub = dict(sub)
            models = sub.pop("model", (self.model,))
            keys = list(sub)
            for model in models:
                for values in itertools.product(*(sub[k] for k in keys)):
                    point = dict(zip(keys, values))
                    shown = ({"model": model} if len(models) > 1 else {}) | point
                    try:
                        spec, hashed = _construct(model, point, self.analyses, self.starts)
                    except (ValueError, TypeError) as err:  # SpecError is a ValueError
                        invalid.append(InvalidPoint(index, model, shown, str(err)))
                    else:
                        h = config_hash(
                            model,
                            hashed,
                            self.optimizer,
                            self.analyses,
                            self.base_seed,
                            self.init_scale,
                        )
                        if h not in seen:
                            seen.add(h)
                            configs.append(SweepConfig(index, model, spec, shown, h))
                    index += 1
        points = [c.point for c in configs] + [p.point for p in invalid]
        keys = dict.fromkeys(k for p in points for k in p)
        varying = [
            k
            for k in keys
            if len({json.dumps(_plain(p.get(k)), sort_keys=True) for p in points}) > 1
        ]
        configs = [
            dataclasses.replace(
                c, label=" ".join(f"{k}={c.point[k]}" for k in varying if k in c.point) or c.hash
            )
            for c in configs
        ]
        return configs, invalid

    def settings_dict(self) -> dict:
        """The non-grid settings as plain JSON-able data (for the manifest)."""
        return {
            "name": self.name,
            "model": self.model,
            "num_seeds": self.num_seeds,
            "base_seed": self.base_seed,
            "init_scale": self.init_scale,
            "optimizer": self.optimizer.as_dict(),
            "analyses": {k: dict(v) for k, v in self.analyses},
            "starts": self.starts.as_dict(),
            "seeds_per_chunk": self.seeds_per_chunk,
            "memory_budget": self.memory_budget,
        }


def _construct(model: str, point: dict, analyses: tuple, starts: StartSettings = StartSettings()):
    """``(spec, hashed)`` of one grid point: the spec with the system's ``prepare_spec`` data
    attached (host side, e.g. the UFM's convex reference value), vetted by the analyses' checks
    and the starts, and the spec as constructed (whose fields the configuration hash covers, so
    that a float computed by ``prepare_spec`` never changes the hash). Raises
    ValueError/TypeError."""
    hashed = model_registry()[model][0](**{k: _from_toml(v) for k, v in point.items()})
    prepare = get_system(model).prepare_spec
    spec = hashed if prepare is None else prepare(hashed)
    if starts.planted_per_dim and get_system(model).planted is None:
        raise SpecError(
            f"starts.planted_per_dim: planted saddles need model 'ufm' "
            f"(ufm.saddle_dims), not {model!r}"
        )
    for name, _ in analyses:
        check = analysis_check(name)
        if check is not None:
            try:
                check(spec)
            except (ValueError, TypeError) as err:
                raise SpecError(f"analysis {name!r}: {err}") from None
    return spec, hashed


def load_sweep_spec(source: str | Path) -> SweepSpec:
    """Read and validate a sweep spec from a TOML file path (or a TOML string with a newline)."""
    if isinstance(source, str) and "\n" in source:
        text, name = source, "sweep"
    else:
        path = Path(source)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise SpecError(f"cannot read sweep spec {str(path)!r}: {err.strerror}") from None
        except UnicodeDecodeError as err:
            raise SpecError(
                f"sweep spec {str(path)!r} is not UTF-8 text ({err.reason} at byte "
                f"{err.start}); save it as UTF-8"
            ) from None
        name = path.stem
    try:
        raw = _toml.loads(text)
    except _toml.TOMLDecodeError as err:
        raise SpecError(f"sweep spec is not valid TOML: {err}") from None
    return SweepSpec.from_dict(raw, name=name, text=text)
