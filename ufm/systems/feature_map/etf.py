"""Memory of a training configuration: the compiled step's XLA footprint and a process's peak RSS.

Used by the fixed simplex-ETF classifier comparison (a network with a learned classifier at a
large penultimate width against the same network with a fixed ETF classifier at ``d = K``;
Hoffer et al. 2018, arXiv 1801.04540; Zhu et al. 2021, arXiv 2105.02375), where parameter count
and memory are the claimed savings. Two measures:

* :func:`train_step_memory` (cheap, deterministic): compile one minibatch training step of one
  seed (``value_and_grad`` of the loss, the optax update, the parameter update; parameters and
  optimiser state donated) and read XLA's ``memory_analysis()``: arguments + outputs + temporaries
  - aliased bytes. This is what the step needs on the device, with no runtime overhead; it is
  the number to compare between configurations.
* :func:`peak_rss` (a subprocess, a few seconds): the peak resident set size of a fresh Python
  process that trains one seed for a couple of epochs, and its increase over the process right
  before training (after importing ``ufm`` and loading the data). It includes XLA compilation
  and the runtime, so on small networks it mostly measures those.
"""

from __future__ import annotations

import functools
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .model import data_info, fm_init, make_loss_fn, make_optimizer
from .spec import FeatureMapSpec

__all__ = ["train_step_memory", "peak_rss", "rss_bytes", "peak_rss_bytes", "reset_peak_rss"]


def _bytes(tree) -> int:
    return int(sum(np.prod(x.shape) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree)))


def train_step_memory(spec: FeatureMapSpec) -> dict:
    """XLA memory of one compiled minibatch training step of one seed (module docstring).

    Returns ``{"step_bytes", "argument_bytes", "output_bytes", "temp_bytes", "alias_bytes",
    "param_bytes", "opt_state_bytes"}`` (bytes). ``step_bytes = argument + output + temp -
    alias``.

    Example (the ``tiny`` preset's ETF network 64-128-10, float32, batch 50):
        >>> from ufm.systems.feature_map import PRESETS
        >>> [(_, _, spec)] = PRESETS["tiny"].specs("etf", only=["etf-10"])
        >>> m = train_step_memory(spec)
        >>> m["param_bytes"] == 4 * (64 * 128 + 128 + 128 * 10 + 10), m["step_bytes"] > 0
        (True, True)
    """
    info = data_info(spec)
    dtype = jnp.dtype(spec.dtype)
    loss_fn, opt = make_loss_fn(spec), make_optimizer(spec)
    params = jax.eval_shape(functools.partial(fm_init, spec), jax.random.key(0))
    with jax.numpy_dtype_promotion("standard"):
        opt_state = jax.eval_shape(opt.init, params)

    def step(params, opt_state, x, y):
        value, grads = jax.value_and_grad(loss_fn)(params, (x, y), None)
        with jax.numpy_dtype_promotion("standard"):
            updates, opt_state = opt.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
        return params, opt_state, value

    x = jax.ShapeDtypeStruct((spec.batch_size, info.input_dim), dtype)
    y = jax.ShapeDtypeStruct((spec.batch_size,), jnp.int32)
    compiled = jax.jit(step, donate_argnums=(0, 1)).lower(params, opt_state, x, y).compile()
    m = compiled.memory_analysis()
    arg, out = int(m.argument_size_in_bytes), int(m.output_size_in_bytes)
    temp, alias = int(m.temp_size_in_bytes), int(m.alias_size_in_bytes)
    return {
        "step_bytes": arg + out + temp - alias,
        "argument_bytes": arg,
        "output_bytes": out,
        "temp_bytes": temp,
        "alias_bytes": alias,
        "param_bytes": _bytes(params),
        "opt_state_bytes": _bytes(opt_state),
    }


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_bytes() -> int:
    """Resident set size of this process now (bytes; Linux ``VmRSS``, else the peak so far)."""
    kb = _status_kb("VmRSS")
    return kb * 1024 if kb is not None else peak_rss_bytes()


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (bytes; ``VmHWM`` on Linux, which
    :func:`reset_peak_rss` can reset, else ``ru_maxrss``)."""
    kb = _status_kb("VmHWM")
    if kb is not None:
        return kb * 1024
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: kB on Linux, bytes on macOS
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * scale


def reset_peak_rss() -> bool:
    """Reset the peak RSS to the current RSS (Linux >= 4.0: ``/proc/self/clear_refs`` = 5);
    ``False`` where that is not possible (the peak then includes everything before)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss(spec: FeatureMapSpec, *, epochs: int = 2, timeout: float = 600.0) -> dict:
    """Peak RSS of a fresh process training one seed of ``spec`` for ``min(epochs, spec.epochs)``
    epochs (compilation included): ``{"rss_peak_bytes", "rss_before_bytes", "rss_delta_bytes",
    "peak_reset"}``. ``rss_before_bytes`` is the RSS after importing ``ufm`` and loading the
    data; the peak is reset there (Linux; ``peak_reset``), so ``rss_peak_bytes`` is the peak
    while training and ``rss_delta_bytes`` its increase over the start.

    Raises ``RuntimeError`` with the child's last error line if it fails.
    """
    short = spec.replace(epochs=min(epochs, spec.epochs), checkpoints=())
    root = str(Path(__file__).resolve().parents[3])
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("JAX_PLATFORMS", "cpu" if jax.default_backend() == "cpu" else "")
    if not env["JAX_PLATFORMS"]:
        del env["JAX_PLATFORMS"]
    proc = subprocess.run(
        [sys.executable, "-m", "ufm.systems.feature_map.rss_child", json.dumps(short.as_dict())],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"peak_rss child process failed: {tail}")
    return json.loads(lines[-1])
