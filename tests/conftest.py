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
# Tests run tiny shapes, where XLA's LLVM optimisation is most of the compile time and buys no
# run time: level 0 makes a cold suite about 25 % cheaper in CPU (tests/systems/spectral and
# deep_ufm: 307 s against 415 s). Numerics are checked at this level (the small-input version of
# ufm.core.jitting.adaptive_jit uses it too); benchmarks and large CLI runs use XLA's default.
# Subprocesses (CLI, notebooks) inherit it. Set before JAX starts its backend.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
    ).strip()

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
