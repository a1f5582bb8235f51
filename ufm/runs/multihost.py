"""Several processes on one results folder: static shares, and ``jax.distributed`` that fails fast.

Seeds need no communication, so a sweep over several processes (machines) is a set of independent
shares of the start keys: process ``i`` of ``P`` runs the starts with ``seed % P == i`` and writes
its own files into the common store (writer ``p<i>``). Three ways to run it:

* **static shares** (``ufm sweep run SPEC --num-processes P --process-id I``, no coordinator): the
  processes never talk to each other; one that dies loses only its chunk in flight, a rerun of the
  same command resumes it. The recommended way on CPU and GPU clusters; ``ufm sweep submit`` does
  this with Slurm job arrays.
* **jax.distributed** (``--coordinator HOST:PORT`` or ``auto``): one program over several hosts, as
  TPU pods need. Before JAX's own handshake the processes meet in the results folder
  (:func:`rendezvous`, a file per process refreshed every second), so a partner that never starts
  is reported after ``timeout`` seconds with a one-line error naming it, instead of JAX's C++
  abort after five minutes. JAX runs with ``jax_enable_recoverability``, and the processes meet
  again at the end at a barrier with a timeout (:func:`finish`): a worker that died is reported in
  one line while the others keep their results. If process 0 (the coordinator) dies, JAX
  terminates the others at once (a C++ abort: nothing to catch in Python); every finished chunk
  is already on disk.
* **recovery**: in every case the folder stays consistent; run the same spec again, on one host
  (``ufm sweep run SPEC --out DIR``) or with any number of processes: finished starts are skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import threading
import time
from pathlib import Path

import jax

from ..core.validation import SpecError

__all__ = ["parse_coordinator", "initialize_distributed", "rendezvous", "finish", "MultiHostError"]

_ADDRESS = re.compile(r"^\[?([A-Za-z0-9_.:-]+?)\]?:(\d{1,5})$")


class MultiHostError(RuntimeError):
    """A partner process did not start, or did not finish; the message says which and what to do."""


def parse_coordinator(address: str) -> str:
    """``HOST:PORT`` (or ``auto``), else a ``SpecError`` naming ``--coordinator``."""
    if address == "auto":
        return address
    m = _ADDRESS.match(address or "")
    if not m or not 0 < int(m.group(2)) < 65536:
        raise SpecError(
            f"--coordinator must be HOST:PORT (e.g. node17:1234) or 'auto', got {address!r}"
        )
    return address


def _rdv_dir(folder) -> Path:
    return Path(folder) / ".rendezvous"


def rendezvous(folder, run_id: str, process_id: int, num_processes: int, timeout: float):
    """Meet the other processes in ``folder``; returns the refresher thread's stop event.

    Each process writes ``.rendezvous/<run_id>-p<i>`` and refreshes its modification time every
    second until the stop event is set; a file older than 10 s is stale (a process that is gone).
    Raises :class:`MultiHostError` naming the missing processes after ``timeout`` seconds.
    """
    d = _rdv_dir(folder)
    d.mkdir(parents=True, exist_ok=True)
    mine = d / f"{run_id}-p{process_id}"
    mine.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))
    stop = threading.Event()

    def refresh():
        while not stop.wait(1.0):
            try:
                os.utime(mine)
            except OSError:
                return

    threading.Thread(target=refresh, daemon=True).start()
    t0 = time.monotonic()
    while True:
        now = time.time()
        alive = {
            i
            for i in range(num_processes)
            if (d / f"{run_id}-p{i}").exists()
            and now - (d / f"{run_id}-p{i}").stat().st_mtime < 10.0
        }
        if len(alive) == num_processes:
            return stop
        if time.monotonic() - t0 > timeout:
            stop.set()
            missing = sorted(set(range(num_processes)) - alive)
            raise MultiHostError(
                f"process(es) {', '.join(map(str, missing))} of {num_processes} did not start "
                f"within {timeout:.0f} s (no sign of them in {str(d)!r}); start every process with "
                "the same spec, --out and --coordinator, or run without them: the folder resumes "
                "on one host (ufm sweep run SPEC --out DIR)"
            )
        time.sleep(0.5)


def initialize_distributed(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    folder=None,
    run_key: str = "",
    timeout: float = 60.0,
) -> tuple[int, int] | None:
    """Set up a multi-process run (call before any JAX work); returns the static share
    ``(process_id, num_processes)``, or ``None`` for a single process or a ``jax.distributed``
    run (then ``jax.process_index()`` / ``jax.process_count()`` tell the share).

    Missing values are read from ``UFM_COORDINATOR``, ``UFM_NUM_PROCESSES`` and
    ``UFM_PROCESS_ID``. Without a coordinator the processes are independent static shares (module
    docstring). With ``coordinator`` (``HOST:PORT`` or ``"auto"`` for JAX's cluster detection) the
    processes first meet in ``folder`` (:func:`rendezvous`, ``timeout`` seconds), then call
    ``jax.distributed.initialize`` with recoverability on.
    """
    env = os.environ
    coordinator = coordinator or env.get("UFM_COORDINATOR") or None
    if num_processes is None and env.get("UFM_NUM_PROCESSES"):
        num_processes = int(env["UFM_NUM_PROCESSES"])
    if process_id is None and env.get("UFM_PROCESS_ID"):
        process_id = int(env["UFM_PROCESS_ID"])
    if num_processes is not None and (isinstance(num_processes, bool) or num_processes < 1):
        raise SpecError(f"--num-processes must be an integer >= 1, got {num_processes!r}")
    if coordinator is None:
        if num_processes in (None, 1):
            return None
        if process_id is None or not 0 <= process_id < num_processes:
            raise SpecError(
                f"--process-id must be in [0, {num_processes}) with "
                f"--num-processes {num_processes}, got {process_id!r}"
            )
        return (int(process_id), int(num_processes))
    coordinator = parse_coordinator(coordinator)
    try:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.config.update("jax_enable_recoverability", True)
    except Exception:  # pragma: no cover - options absent in this jax version
        pass
    if coordinator == "auto":
        jax.distributed.initialize()
        return None
    if num_processes is None or process_id is None:
        raise SpecError("--coordinator needs --num-processes and --process-id")
    if not 0 <= process_id < num_processes:
        raise SpecError(f"--process-id must be in [0, {num_processes}), got {process_id}")
    stop = None
    if folder is not None:
        run_id = hashlib.sha256(f"{coordinator}|{num_processes}|{run_key}".encode()).hexdigest()
        stop = rendezvous(folder, run_id[:12], process_id, num_processes, timeout)
    try:
        jax.distributed.initialize(
            coordinator, num_processes, process_id, initialization_timeout=int(max(timeout, 10))
        )
    finally:
        if stop is not None:
            stop.set()
    return None


def finish(timeout: float | None = None) -> None:
    """Wait for the other processes of a ``jax.distributed`` run at a barrier with a timeout
    (default ``$UFM_BARRIER_TIMEOUT`` or 600 s); raise :class:`MultiHostError` (one line) if one
    of them did not arrive."""
    if jax.process_count() <= 1:
        return
    if timeout is None:
        timeout = float(os.environ.get("UFM_BARRIER_TIMEOUT", "600"))
    from jax._src import distributed  # the client's barrier has a timeout; multihost_utils' not

    client = distributed.global_state.client
    if client is None:  # pragma: no cover
        return
    try:
        client.wait_at_barrier("ufm-sweep-finished", int(timeout * 1000))
    except Exception as err:  # JaxRuntimeError: a partner died or is late
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise MultiHostError(
            f"process {jax.process_index()} finished its share, but not every other process "
            f"reached the end within {timeout:.0f} s ({first[:120]}); their finished chunks are "
            "in the folder: resume with the same command, or on one host with "
            "`ufm sweep run SPEC --out DIR`"
        ) from None
