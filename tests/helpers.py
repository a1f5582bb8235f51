"""Shared test helpers: paths, spec factories, independent oracles, the subprocess harness.

Importable from every test folder (``tests/conftest.py`` puts this folder on ``sys.path``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

import ufm  # noqa: E402

# -- spec factories ------------------------------------------------------------------------------


def ufm_spec(K=3, n=2, d=None, loss="ce", bias="none", lam=5e-3, lambda_b=None, **kw):
    """A small :class:`ufm.UFMSpec` (``d = K`` by default; ``lambda_b`` 1e-2 when regularised)."""
    if lambda_b is None:
        lambda_b = 1e-2 if bias == "regularized" else 0.0
    return ufm.UFMSpec(
        K=K,
        n=n,
        d=K if d is None else d,
        loss=loss,
        bias=bias,
        lambda_W=lam,
        lambda_H=lam,
        lambda_b=lambda_b,
        **kw,
    )


def all_variants(K=3, n=2, d=None, lam=5e-3):
    """One spec per loss x bias variant."""
    return [
        ufm_spec(K, n, d, loss, bias, lam)
        for loss in ("ce", "mse")
        for bias in ("none", "free", "regularized")
    ]


def batch_of(params):
    """A single point as a batch of one (leading axis)."""
    import jax

    return jax.tree_util.tree_map(lambda x: x[None], params)


# -- independent oracles (numpy / scipy) -----------------------------------------------------------


def dense_hessian_numpy(spec, params, h=1e-5):
    """Hessian of ``ufm.loss`` by central differences of the autodiff gradient (float64 numpy):
    an oracle independent of jax.hessian."""
    import jax
    from jax.flatten_util import ravel_pytree

    x0, unravel = ravel_pytree(params)
    grad = jax.jit(jax.grad(lambda x: ufm.loss(spec, unravel(x))))
    x0 = np.asarray(x0, np.float64)
    H = np.empty((x0.size, x0.size))
    for i in range(x0.size):
        e = np.zeros_like(x0)
        e[i] = h
        H[:, i] = (np.asarray(grad(x0 + e)) - np.asarray(grad(x0 - e))) / (2 * h)
    return 0.5 * (H + H.T)


# -- the command line in process (compiled code shared with the other tests) --------------------

PNG = b"\x89PNG\r\n\x1a\n"


def main_in_process(capsys, *argv) -> tuple:
    """``ufm <argv>`` in this process: ``(exit code, stdout, stderr)``; argparse's own errors
    (``SystemExit``) count as their exit code."""
    from ufm.cli.main import main

    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def assert_one_line_error(code, err: str, pattern: str = "") -> None:
    """Exit code 2 and a single ``ufm: error: ...`` line matching ``pattern`` (a regex)."""
    assert code == 2, (code, err)
    assert err.startswith("ufm: error:") and err.count("\n") == 1, err
    assert re.search(pattern, err), (pattern, err)


def assert_pngs(folder, names, min_bytes: int = 10_000) -> None:
    """``folder/<name>.png`` exist, are PNG files and hold more than ``min_bytes`` (a real plot)."""
    for name in names:
        data = (Path(folder) / f"{name}.png").read_bytes()
        assert data.startswith(PNG) and len(data) > min_bytes, name


def help_and_listing(capsys, command: str) -> tuple:
    """``(ufm COMMAND --help text, ufm COMMAND --list text)``; ``--list`` must exit 0."""
    code, text, _ = main_in_process(capsys, command, "--help")
    assert code == 0
    code, listing, err = main_in_process(capsys, command, "--list")
    assert code == 0, err
    return text, listing


# -- subprocesses
# -----------------------------------------------------------------------------------


def cli_env(devices: int | None = None, **extra) -> dict:
    """Environment of a ``ufm`` subprocess: CPU, no progress bar, ``devices`` fake CPU devices."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "UFM_PROGRESS": "0", **extra}
    if devices is not None:
        env["XLA_FLAGS"] = (
            env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={devices}"
        ).strip()
    return env


def cli_cmd(*args) -> list:
    """``python -m ufm <args>``."""
    return [sys.executable, "-m", "ufm", *map(str, args)]


def interruptible_cli_cmd(*args) -> list:
    """``python -m ufm <args>`` with Ctrl-C's default action (KeyboardInterrupt), as in a
    terminal: a process started with SIGINT ignored (an xdist worker may be, after other tests)
    keeps it ignored, and a SIGINT would never interrupt it."""
    boot = (
        "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "sys.argv = ['ufm', *sys.argv[1:]]; runpy.run_module('ufm', run_name='__main__')"
    )
    return [sys.executable, "-c", boot, *map(str, args)]


def run_cli(*args, env=None, timeout=600, cwd=None) -> subprocess.CompletedProcess:
    """Run ``ufm <args>`` in a subprocess; returns the completed process (text output)."""
    return subprocess.run(
        cli_cmd(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or cli_env(),
        cwd=cwd,
    )


def run_script(script: str, *, timeout=240, env=None) -> subprocess.CompletedProcess:
    """Run a Python snippet in a fresh interpreter (a hang fails the test instead of freezing the
    suite); returns the completed process."""
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or cli_env(),
    )
