"""Sweep specifications: TOML grids over problem specs, seeds, optimiser and analyses.

A sweep spec describes a grid of problem configurations, each run from ``seeds.count`` random
starts, with one optimiser setting and a list of analyses, e.g. (``experiments/sweeps/tiny.toml``)::

    name = "tiny"
    model = "ufm"                 # key of the model registry (register_model)
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
    seeds_per_chunk = 8           # or memory_budget = "1 GiB" (per device)

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

Registries: :func:`register_model` maps a ``model`` name to a spec constructor (the fields
of a dataclass spec are the grid keys); :func:`register_analysis` adds a per-point analysis, a
function ``fn(spec, result, **options) -> {column: array of shape (S,)}`` of the spec and the
:class:`ufm.OptimizeResult` of a chunk after the polish stage.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import numbers
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..core.registry import get_system, registered_systems
from ..core.validation import SpecError
from ..optim.settings import POLISH_METHODS, OptimizerSettings
from ..optim.transforms import make_optimizer
from .analyses import analysis_check, analysis_options, analysis_registry, analysis_validator
from .starts import StartSettings

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

# -- models: the sweepable registered systems ------------------------------------------------


def model_registry() -> dict:
    """``{name: (spec constructor, grid fields)}`` of the sweepable systems (a copy)."""
    return {
        name: (system.spec_type, tuple(f.name for f in dataclasses.fields(system.spec_type)))
        for name, system in registered_systems().items()
        if system.sweepable and dataclasses.is_dataclass(system.spec_type)
    }


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
        return _parse(raw, name, text)

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


# -- hashing -----------------------------------------------------------------------------------


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


# -- parsing -----------------------------------------------------------------------------------

_TOP_KEYS = ("name", "model", "out", "analyses", "grid", "seeds", "starts", "optimizer", "chunking")
_OPT_KEYS = ("name", "learning_rate", "max_steps", "tol", "chunk", "divergence_threshold")


def _err(key: str, expected: str, got) -> SpecError:
    return SpecError(f"sweep spec key {key!r}: expected {expected}, got {got!r}")


def _unknown(where: str, keys, allowed) -> None:
    for k in keys:
        if k not in allowed:
            raise SpecError(
                f"sweep spec: unknown key {where + k!r}; expected one of {', '.join(allowed)}"
            )


def _int(key, v, minimum):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < minimum:
        raise _err(key, f"an integer >= {minimum}", v)
    return int(v)


def _number(key, v, *, positive=False):
    ok = isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
    if not ok or (positive and v <= 0) or v < 0:
        raise _err(key, "a finite number " + ("> 0" if positive else ">= 0"), v)
    return float(v)


def _table(key, v):
    if not isinstance(v, Mapping):
        raise _err(key, "a table ([" + key + "])", v)
    return v


def _parse(raw: Mapping, default_name: str, text: str | None) -> SweepSpec:
    _unknown("", raw, _TOP_KEYS)
    name = raw.get("name", default_name)
    if not isinstance(name, str) or not name:
        raise _err("name", "a non-empty string", name)
    model = raw.get("model", "ufm")
    models_known = model_registry()
    if model not in models_known:
        raise _err("model", f"one of {', '.join(sorted(models_known))}", model)
    out = raw.get("out")
    if out is not None and (not isinstance(out, str) or not out):
        raise _err("out", "a folder path string", out)

    # grid
    if "grid" not in raw:
        raise SpecError(
            "sweep spec: missing key 'grid' (a [grid] table of the problem-spec fields to sweep)"
        )
    grids = raw["grid"]
    if isinstance(grids, Mapping):
        grids = [grids]
    if not isinstance(grids, list) or not grids:
        raise _err("grid", "a [grid] table or [[grid]] tables", raw["grid"])
    grid = []
    for i, sub in enumerate(grids):
        where = "grid." if len(grids) == 1 else f"grid[{i}]."
        sub = _table(where[:-1], sub)
        models = sub.get("model", model)
        models = models if isinstance(models, list) else [models]
        for m in models:
            if m not in models_known:
                raise _err(where + "model", f"one of {', '.join(sorted(models_known))}", m)
        allowed = set.intersection(*(set(models_known[m][1]) for m in models)) | {"model"}
        for k in sub:
            if k not in allowed:
                fields = ", ".join(f for f in models_known[models[0]][1])
                raise SpecError(
                    f"sweep spec: unknown key {where + k!r} for model "
                    f"{'/'.join(models)}; expected one of {fields}"
                )
        axes = []
        for k, v in sub.items():
            values = v if isinstance(v, list) else [v]
            if not values:
                raise _err(where + k, "a value or a non-empty list of values", v)
            if k != "model":
                for m in models:
                    for x in values:
                        _check_type(where + k, models_known[m][0], k, x)
            axes.append((k, tuple(values)))
        grid.append(tuple(axes))

    # seeds
    seeds = _table("seeds", raw.get("seeds", {}))
    _unknown("seeds.", seeds, ("count", "base", "init_scale"))
    if "count" not in seeds:
        raise SpecError("sweep spec: missing key 'seeds.count' (number of seeds, an integer >= 1)")
    num_seeds = _int("seeds.count", seeds["count"], 1)
    if num_seeds >= 2**32:
        raise _err("seeds.count", "an integer < 2**32", num_seeds)
    check_seed_count("seeds.count", num_seeds)
    base_seed = _int("seeds.base", seeds.get("base", 0), 0)
    if base_seed >= 2**32:
        raise _err("seeds.base", "an integer in [0, 2**32)", base_seed)
    init_scale = seeds.get("init_scale")
    if init_scale is not None:
        init_scale = _number("seeds.init_scale", init_scale, positive=True)

    # optimiser
    opt = dict(_table("optimizer", raw.get("optimizer", {})))
    oname = opt.pop("name", "gd")
    if not isinstance(oname, str) or not oname:
        raise _err("optimizer.name", "an optimiser name string (e.g. 'gd')", oname)
    kw = {}
    if "polish" in opt:
        kw["polish"] = opt.pop("polish")
        if kw["polish"] not in POLISH_METHODS:
            raise _err("optimizer.polish", f"one of {', '.join(POLISH_METHODS)}", kw["polish"])
    if "polish_tol" in opt:
        kw["polish_tol"] = _number("optimizer.polish_tol", opt.pop("polish_tol"), positive=True)
    if "polish_max_iter" in opt:
        kw["polish_max_iter"] = _int("optimizer.polish_max_iter", opt.pop("polish_max_iter"), 1)
    for k in _OPT_KEYS[1:]:
        if k in opt:
            v = opt.pop(k)
            if k in ("max_steps", "chunk"):
                kw[k] = _int("optimizer." + k, v, 1)
            else:
                kw[k] = _number("optimizer." + k, v, positive=k != "tol")
    for k, v in opt.items():  # extra optimiser options, e.g. beta
        if not isinstance(v, (bool, numbers.Real, str)):
            raise _err("optimizer." + k, "a number, bool or string option", v)
    try:
        optimizer = OptimizerSettings(name=oname.lower(), **kw, options=tuple(sorted(opt.items())))
    except (ValueError, TypeError) as err:
        named = next((k for k in opt if repr(k) in str(err) or str(err).startswith(k)), None)
        where = f"optimizer.{named}" if named else "optimizer"
        raise SpecError(f"sweep spec key {where!r}: {err}") from None

    # analyses
    an = raw.get("analyses", [])
    if isinstance(an, list):
        if not all(isinstance(a, str) for a in an):
            raise _err("analyses", "a list of analysis names or [analyses.NAME] tables", an)
        an = {a: {} for a in an}
    elif not isinstance(an, Mapping):
        raise _err("analyses", "a list of analysis names or [analyses.NAME] tables", an)
    analyses = []
    for a, opts in sorted(an.items()):
        if a not in analysis_registry():
            raise _err("analyses", f"names among {', '.join(sorted(analysis_registry()))}", a)
        opts = _table(f"analyses.{a}", opts)
        allowed = analysis_options(a)
        if allowed is not None:
            _unknown(f"analyses.{a}.", opts, allowed or ("(no options)",))
        validate = analysis_validator(a)
        if validate is not None:
            try:
                validate(dict(opts))
            except (ValueError, TypeError) as err:
                raise SpecError(f"sweep spec key 'analyses.{a}': {err}") from None
        analyses.append((a, tuple(sorted(opts.items()))))

    # starts
    st = _table("starts", raw.get("starts", {}))
    _unknown("starts.", st, ("planted_per_dim", "origin"))
    origin = st.get("origin", False)
    if not isinstance(origin, bool):
        raise _err("starts.origin", "true or false", origin)
    starts = StartSettings(_int("starts.planted_per_dim", st.get("planted_per_dim", 0), 0), origin)

    # chunking
    ch = _table("chunking", raw.get("chunking", {}))
    _unknown("chunking.", ch, ("seeds_per_chunk", "memory_budget"))
    if "seeds_per_chunk" in ch and "memory_budget" in ch:
        raise SpecError(
            "sweep spec: give either 'chunking.seeds_per_chunk' or "
            "'chunking.memory_budget', not both"
        )
    spc = ch.get("seeds_per_chunk")
    spc = None if spc is None else _int("chunking.seeds_per_chunk", spc, 1)
    budget = ch.get("memory_budget")
    budget = None if budget is None else parse_bytes(budget, "chunking.memory_budget")

    spec = SweepSpec(
        name=name,
        model=model,
        grid=tuple(grid),
        num_seeds=num_seeds,
        base_seed=base_seed,
        init_scale=init_scale,
        optimizer=optimizer,
        analyses=tuple(analyses),
        starts=starts,
        seeds_per_chunk=spc,
        memory_budget=budget,
        out=out,
        text=text,
    )
    return spec


_KINDS = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false"}


def _check_type(key: str, cls, field: str, value) -> None:
    """A grid value of the wrong type (``K = "three"``) is a malformed spec, not an invalid
    combination: raise naming the key, before any grid point is built."""
    ann = {f.name: f.type for f in dataclasses.fields(cls)}.get(field)
    kind = ann if isinstance(ann, str) else getattr(ann, "__name__", "")
    alternatives = [a.strip() for a in kind.replace("Optional[", "").rstrip("]").split("|")]
    kind = alternatives[0]
    if "tuple" in alternatives[1:] and isinstance(value, list):  # e.g. UFM class sizes
        if not value or not all(_is_kind(kind, x) for x in value):
            raise _err(key, f"{_KINDS.get(kind, kind)} or a non-empty list of them", value)
        return
    if kind in _KINDS and not _is_kind(kind, value):
        raise _err(key, _KINDS[kind], value)


def _is_kind(kind: str, value) -> bool:
    if kind == "int":
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    return True


def _check_optimizer(opt: OptimizerSettings) -> None:
    """Let ``ufm.make_optimizer`` reject unknown names/options now rather than mid-sweep."""
    try:
        make_optimizer(opt.name, opt.learning_rate, **dict(opt.options))
    except (ValueError, TypeError, KeyError) as err:
        raise SpecError(f"sweep spec key 'optimizer': {err}") from None


_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def parse_bytes(value, key: str = "memory_budget") -> int:
    """Bytes from an integer or a string such as ``"512 MiB"``, ``"2GB"`` (KB = 1e3, KiB = 1024).

    >>> parse_bytes("1.5 GiB"), parse_bytes(4096)
    (1610612736, 4096)
    """
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value > 0:
        return int(value)
    if isinstance(value, str):
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][0-9]+)?)\s*([A-Za-z]*)\s*", value)
        if m and m.group(2).lower() in _UNITS and float(m.group(1)) > 0:
            return int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    raise _err(
        key, "a positive byte count (an integer, or a string like '512 MiB' or '2 GB')", value
    )


#: Host memory one start key costs in the planning step (source, seed, bookkeeping), bytes.
BYTES_PER_START = 64


def check_seed_count(key: str, count: int) -> None:
    """Refuse seed counts whose bookkeeping alone would not fit in a quarter of the host memory
    (the planning step holds every start key), naming the key and the estimate."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - non-POSIX
        total = 16 * 2**30
    need = count * BYTES_PER_START
    if need > total // 4:
        raise SpecError(
            f"{key} = {count} would need about {need / 2**30:.1f} GiB of host memory "
            f"just to plan the starts ({total / 2**30:.0f} GiB here); split the run "
            "into several sweeps (seeds.base) or Slurm array tasks"
        )
