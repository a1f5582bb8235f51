"""Validation of a sweep spec's TOML document: the grid against the sweepable systems' spec
fields, seeds, optimiser, analyses, starts and chunking, every error naming the key.

The TOML form is described in :mod:`ufm.runs.sweep_spec`; :func:`parse_sweep_document` returns the
fields of a :class:`ufm.runs.SweepSpec` and :func:`model_registry` the systems a grid may name.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping

from ..core.registry import registered_systems
from ..core.validation import SpecError
from ..optim.settings import POLISH_METHODS, OptimizerSettings
from .analyses import analysis_options, analysis_registry, analysis_validator
from .memory_limits import check_seed_count, parse_bytes
from .starts import StartSettings

# -- models: the sweepable registered systems ------------------------------------------------


def model_registry() -> dict:
    """``{name: (spec constructor, grid fields)}`` of the sweepable systems (a copy)."""
    return {
        name: (system.spec_type, tuple(f.name for f in dataclasses.fields(system.spec_type)))
        for name, system in registered_systems().items()
        if system.sweepable and dataclasses.is_dataclass(system.spec_type)
    }


# -- parsing ------------------------------------------------------------------------------------

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


def parse_sweep_document(raw: Mapping, default_name: str, text: str | None) -> dict:
    """The fields of a :class:`ufm.runs.SweepSpec` from a parsed TOML document (raises
    ``SpecError`` naming the key and the expected form)."""
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

    return dict(
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
