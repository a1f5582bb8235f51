"""The persistent compilation cache is shared by concurrent processes only under JAX's file lock."""

import subprocess
import sys


def test_cache_is_bounded_and_locked(tmp_path):
    """A size bound is what makes JAX lock the cache folder (ufm.core.cache): without it a reader
    could load a half-written entry. Fresh interpreter, so the conftest's own setting is not
    what is checked; ``UFM_COMPILATION_CACHE=off`` switches the cache off."""
    code = (
        "import jax, jax.numpy as jnp\n"
        "from ufm.core.cache import enable_compilation_cache, MAX_CACHE_BYTES\n"
        "folder = enable_compilation_cache()\n"
        "assert jax.config.jax_compilation_cache_max_size == MAX_CACHE_BYTES > 0\n"
        "jax.jit(lambda x: x * 2)(jnp.ones(3)).block_until_ready()\n"
        "assert (folder / '.lockfile').exists(), sorted(p.name for p in folder.iterdir())\n"
        "assert any(p.name.endswith('-cache') for p in folder.iterdir())\n"
    )
    env = {"UFM_COMPILATION_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)
    off = (
        "from ufm.core.cache import enable_compilation_cache\n"
        "assert enable_compilation_cache() is None\n"
    )
    subprocess.run(
        [sys.executable, "-c", off],
        check=True,
        env={**env, "UFM_COMPILATION_CACHE": "off"},
        timeout=120,
    )
