"""Test configuration: float64 on, strict dtype promotion, 8 fake CPU devices.

Set before JAX initialises its backends, so every test sees the same environment. float32 paths
request float32 explicitly and have their own tests.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/helpers.py, tests/toy_system

os.environ.setdefault("UFM_FAST", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# Tests run tiny shapes, where compilation is most of the time: XLA's LLVM optimisation level 0
# (a cold tests/systems/spectral + deep_ufm run 307 s of CPU against 415 s) is what
# ufm.core.jitting.QUICK_COMPILE uses for small specs; numerics are checked in this setting,
# benchmarks and large CLI runs use XLA's default. (XLA:CPU's older loop emitters,
# --xla_cpu_use_fusion_emitters=false, would halve the suite's time again but make batched and
# single-point results differ in the last bit, which the bit-for-bit tests catch.)
# Subprocesses (CLI, notebooks) inherit it. Set before JAX starts its backend.
for _flag in ("--xla_backend_optimization_level=0",):
    if _flag.split("=")[0] not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _flag).strip()

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")

# compiled code shared by the test workers, the notebooks and the CLI subprocesses (as the CLI does)
from ufm.core.cache import cache_dir, enable_compilation_cache  # noqa: E402

# One cache folder per xdist worker (its CLI and notebook subprocesses inherit it): JAX writes a
# cache entry in place, and a worker reading an entry the other worker was writing crashed with a
# segmentation fault (jax 0.10.2; JAX locks the folder only when the cache has a size bound, which
# makes every write scan the folder and slowed the suite 4x).
_worker = os.environ.get("PYTEST_XDIST_WORKER")
_base = cache_dir()
if _worker and _base is not None:
    os.environ["UFM_COMPILATION_CACHE"] = str(_base.parent / f"{_base.name}-test-{_worker}")
enable_compilation_cache()
