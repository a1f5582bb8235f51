"""Compile and load ufm's native CPU kernels: XLA FFI custom calls written in C++.

The sources (``*.cc`` beside this module) are compiled on first use with the machine's C++
compiler (``$CXX``, else ``c++``, ``g++`` or ``clang++``) at ``-O3 -march=native`` against the
XLA FFI headers that jaxlib ships (``jax.ffi.include_dir()``), into a per-user folder:
``$UFM_NATIVE_CACHE`` if set, else ``$XDG_CACHE_HOME/ufm/native`` (``~/.cache/ufm/native``). There
is one library per group of kernels (:data:`LIBRARIES`), compiled when a job first needs it: the
optimiser chunk (``"chunk"``, its float32 and float64 parts at once, one process each: 8-10 s once
per machine on 2 cores) and the block-arrow Schur sums (``"schur"``, 3-4 s; BENCHMARKS.md).
A library's name carries a hash of its sources, the compiler's version, the flags, jaxlib's
version and the CPU's feature flags, so a change to any of them (or a node of another CPU type
sharing the home folder) compiles a new one; concurrent processes compile to private files and
rename.

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

__all__ = ["load", "available", "unavailable_reason", "native_cache_dir", "FLAGS", "LIBRARIES"]

FLAGS = ("-O3", "-march=native", "-std=c++17", "-fPIC", "-fno-math-errno", "-pthread")
#: The libraries and their compile jobs, run at once (one process each), then linked: ``(source,
#: part)``, the part (``-DUFM_PART=...``) selecting one handler of a source that has several
#: (``None``: all). The optimiser chunk's float32 and float64 handlers compile apart: half the
#: wall time on two cores.
LIBRARIES = {
    "chunk": (("ufm_chunk.cc", "32"), ("ufm_chunk.cc", "64")),
    "schur": (("ufm_schur.cc", None),),
}
_OFF = ("off", "0", "false", "no", "none")
_HERE = Path(__file__).resolve().parent
_reasons: dict[str, str | None] = {}


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


def _key(cxx: str, library: str = "chunk") -> str:
    jobs = LIBRARIES[library]
    h = hashlib.sha256()
    for name in dict.fromkeys(src for src, _ in jobs):
        h.update((_HERE / name).read_bytes())
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=30)
    listing = " ".join(f"{src}:{part}" for src, part in jobs)
    for part in (version.stdout, " ".join(FLAGS), listing, jaxlib.__version__, _cpu_flags()):
        h.update(part.encode())
    return h.hexdigest()[:16]


@functools.cache
def load(library: str = "chunk") -> ctypes.CDLL | None:
    """The compiled library ``library`` of :data:`LIBRARIES` (compiled now if needed), or
    ``None`` when native kernels are off here."""
    if library not in LIBRARIES:
        raise ValueError(f"library must be one of {sorted(LIBRARIES)}, got {library!r}")
    if _switched_off():
        _reasons[library] = "switched off by UFM_NATIVE_KERNELS"
        return None
    cxx = _compiler()
    if cxx is None:
        _reasons[library] = "no C++ compiler found ($CXX, c++, g++, clang++)"
        return None
    try:
        folder = native_cache_dir()
        target = folder / f"libufm_{library}-{_key(cxx, library)}.so"
        if not target.exists():
            folder.mkdir(parents=True, exist_ok=True)
            _reasons[library] = _compile(cxx, LIBRARIES[library], folder, target)
            if _reasons[library] is not None:
                return None
        return ctypes.cdll.LoadLibrary(str(target))
    except (OSError, subprocess.SubprocessError) as err:
        _reasons[library] = f"native kernels unavailable: {err}"
        return None


def _compile(cxx: str, jobs, folder: Path, target: Path) -> str | None:
    """Run the compile ``jobs`` at once and link them into ``target`` (atomically: a private
    file, then a rename). Returns why it failed, or ``None``."""
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        include = f"-I{jax.ffi.include_dir()}"
        objects, procs = [], []
        for src, part in jobs:
            obj = os.path.join(tmp, f"{Path(src).stem}-{part or 'all'}.o")
            define = [f"-DUFM_PART={part}"] if part else []
            cmd = [cxx, *FLAGS, include, *define, "-c", str(_HERE / src)]
            procs.append(subprocess.Popen(cmd + ["-o", obj], stderr=subprocess.PIPE, text=True))
            objects.append(obj)
        errors = [p.communicate(timeout=600)[1] for p in procs]
        link = [cxx, "-shared", "-pthread", *objects, "-o", os.path.join(tmp, "lib.so")]
        if all(p.returncode == 0 for p in procs):
            done = subprocess.run(link, capture_output=True, text=True, timeout=600)
            if done.returncode == 0:
                os.replace(os.path.join(tmp, "lib.so"), target)
                return None
            errors.append(done.stderr)
        last = [e.strip().splitlines()[-1] for e in errors if e and e.strip()] or ["(no output)"]
        return f"compiling the native kernels failed: {last[0]}"


def available(library: str = "chunk") -> bool:
    """Whether the native library ``library`` (:data:`LIBRARIES`) is compiled and loadable here
    (compiling it now if needed)."""
    return load(library) is not None


def unavailable_reason(library: str = "chunk") -> str | None:
    """Why :func:`available` is ``False`` (``None`` when it is ``True``)."""
    return None if available(library) else _reasons.get(library)
