"""JAX's persistent compilation cache, switched on for the command line.

Compilation dominates short runs (the ``ufm landscape`` default spends most of its first run
compiling); with the cache a second run with the same shapes loads the compiled code from disk.
:func:`enable_compilation_cache` points JAX at a per-user folder: ``$UFM_COMPILATION_CACHE`` if set,
else ``$XDG_CACHE_HOME/ufm/jax`` (``~/.cache/ufm/jax``). ``UFM_COMPILATION_CACHE=off`` (or ``0``,
``false``, ``no``) turns it off. The CLI calls it before any JAX work; library users may call it
themselves (JAX's own ``jax_compilation_cache_dir`` setting, if already set, is left alone).
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

__all__ = ["enable_compilation_cache", "cache_dir", "user_cache_root"]

_OFF = ("off", "0", "false", "no", "none")


def user_cache_root() -> Path:
    """ufm's per-user cache folder: ``$XDG_CACHE_HOME/ufm``, else ``~/.cache/ufm``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ufm"


def cache_dir() -> Path | None:
    """The cache folder the environment asks for (``None``: switched off)."""
    env = os.environ.get("UFM_COMPILATION_CACHE", "").strip()
    if env.lower() in _OFF and env:
        return None
    if env:
        return Path(env).expanduser()
    return user_cache_root() / "jax"


def enable_compilation_cache(path=None) -> Path | None:
    """Switch JAX's persistent compilation cache on (module docstring); returns the folder, or
    ``None`` when it is switched off or the folder cannot be created (the run goes on uncached)."""
    if jax.config.jax_compilation_cache_dir:
        return Path(jax.config.jax_compilation_cache_dir)
    folder = Path(path).expanduser() if path is not None else cache_dir()
    if folder is None:
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return folder
