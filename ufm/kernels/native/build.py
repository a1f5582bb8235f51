"""Compile and load ufm's native CPU kernels: XLA FFI custom calls written in C++.

The sources (``*.cc`` beside this module) are compiled on first use with the machine's C++
compiler (``$CXX``, else ``c++``, ``g++`` or ``clang++``) at ``-O3 -march=native`` against the
XLA FFI headers that jaxlib ships (``jax.ffi.include_dir()``), into a per-user folder:
``$UFM_NATIVE_CACHE`` if set, else ``$XDG_CACHE_HOME/ufm/native`` (``~/.cache/ufm/native``). The
library's name carries a hash of the sources, the compiler's version, the flags, jaxlib's version
and the CPU's feature flags, so a change to any of them (or a node of another CPU type sharing the
home folder) compiles a new one; concurrent processes compile to private files and rename. The
float32 and float64 parts compile at once (one process each) and take 8-10 s once per machine
on 2 cores (BENCHMARKS.md).

``UFM_NATIVE_KERNELS=off`` (or ``0``, ``false``, ``no``) switches the native kernels off; without
a compiler, or if compiling fails, they are off too (:func:`unavailable_reason` says why) and the
callers take their XLA paths, which give the same numbers to rounding.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import jax
import jaxlib

from ...core.cache import user_cache_root

__all__ = ["load", "available", "unavailable_reason", "native_cache_dir", "FLAGS"]

SOURCES = ("ufm_chunk.cc",)
FLAGS = ("-O3", "-march=native", "-std=c++17", "-fPIC", "-fno-math-errno")
#: Each source is compiled in these parts (``-DUFM_PART=...``, one handler each) at the same time,
#: one process per part, then linked: half the wall time on two cores.
PARTS = ("32", "64")
_OFF = ("off", "0", "false", "no", "none")
_HERE = Path(__file__).resolve().parent
_reason: str | None = None


def native_cache_dir() -> Path:
    """The folder of compiled native kernels (module docstring)."""
    env = os.environ.get("UFM_NATIVE_CACHE", "").strip()
    return Path(env).expanduser() if env else user_cache_root() / "native"


def _switched_off() -> bool:
    return os.environ.get("UFM_NATIVE_KERNELS", "").strip().lower() in _OFF


def _compiler() -> str | None:
    for name in (os.environ.get("CXX", "").strip(), "c++", "g++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _key(cxx: str) -> str:
    h = hashlib.sha256()
    for name in SOURCES:
        h.update((_HERE / name).read_bytes())
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=30)
    for part in (version.stdout, " ".join(FLAGS + PARTS), jaxlib.__version__, _cpu_flags()):
        h.update(part.encode())
    return h.hexdigest()[:16]


@functools.cache
def load() -> ctypes.CDLL | None:
    """The compiled library (compiled now if needed), or ``None`` when native kernels are off."""
    global _reason
    if _switched_off():
        _reason = "switched off by UFM_NATIVE_KERNELS"
        return None
    cxx = _compiler()
    if cxx is None:
        _reason = "no C++ compiler found ($CXX, c++, g++, clang++)"
        return None
    try:
        folder = native_cache_dir()
        target = folder / f"libufm_native-{_key(cxx)}.so"
        if not target.exists():
            folder.mkdir(parents=True, exist_ok=True)
            _reason = _compile(cxx, folder, target)
            if _reason is not None:
                return None
        return ctypes.cdll.LoadLibrary(str(target))
    except (OSError, subprocess.SubprocessError) as err:
        _reason = f"native kernels unavailable: {err}"
        return None


def _compile(cxx: str, folder: Path, target: Path) -> str | None:
    """Compile the parts of every source at once and link them into ``target`` (atomically:
    a private file, then a rename). Returns why it failed, or ``None``."""
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        include = f"-I{jax.ffi.include_dir()}"
        objects, procs = [], []
        for src in SOURCES:
            for part in PARTS:
                obj = os.path.join(tmp, f"{Path(src).stem}-{part}.o")
                cmd = [cxx, *FLAGS, include, f"-DUFM_PART={part}", "-c", str(_HERE / src)]
                procs.append(subprocess.Popen(cmd + ["-o", obj], stderr=subprocess.PIPE, text=True))
                objects.append(obj)
        errors = [p.communicate(timeout=600)[1] for p in procs]
        link = [cxx, "-shared", *objects, "-o", os.path.join(tmp, "lib.so")]
        if all(p.returncode == 0 for p in procs):
            done = subprocess.run(link, capture_output=True, text=True, timeout=600)
            if done.returncode == 0:
                os.replace(os.path.join(tmp, "lib.so"), target)
                return None
            errors.append(done.stderr)
        last = [e.strip().splitlines()[-1] for e in errors if e and e.strip()] or ["(no output)"]
        return f"compiling the native kernels failed: {last[0]}"


def available() -> bool:
    """Whether the native kernels are compiled and loadable here."""
    return load() is not None


def unavailable_reason() -> str | None:
    """Why :func:`available` is ``False`` (``None`` when it is ``True``)."""
    return None if available() else _reason
