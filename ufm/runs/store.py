"""The result store: one folder per job, one Parquet file per finished chunk, written atomically.

Every job writes here: ``ufm landscape``, ``ufm sweep``, the Slurm array tasks of ``ufm sweep
submit`` and the trained-network systems. Layout::

    DIR/manifest.json      configurations (hash -> settings, start counts, label), runs
    DIR/data/*.parquet     one file per chunk: one row per (configuration, start) [x checkpoint]
    DIR/traces/*.npz       optional optimisation traces of a chunk (NC metrics along the run)
    DIR/figures/           written by the reports
    DIR/.lock-<writer>     held (``flock``) by the process writing as ``<writer>``

Atomic writes: a chunk is written to a hidden temporary file, flushed and ``fsync``-ed, renamed
into place with ``os.replace`` and the folder is ``fsync``-ed, so a run killed at any moment loses
at most the chunk in flight and never leaves a partial file. Rows are identified by
``(config_hash, source, seed)`` (plus ``epoch`` for checkpointed training rows; files written
before the ``source`` column existed hold random starts, so a missing ``source`` reads as
``"random"``): a rerun reads those columns of every file and skips finished starts.

Writers: a process writes as a *writer id* (``p<process index>`` for the processes of a
``jax.distributed`` run, ``t<task>`` for the tasks of a Slurm array) and holds the lock file of
that id for its whole run (``fcntl.flock``, released by the kernel even on ``SIGKILL``). A second
process with the same writer id is refused with a message naming the holder (host, pid, command,
start time); two plain ``ufm sweep run`` on one folder therefore cannot both write. Files carry the
writer id in their names; temporary files are cleaned only when their writer's lock is free.

Read the results with :func:`load_results` (pandas) or :func:`load_results_arrow` (pyarrow).
Duplicate row keys (only possible from writers that bypassed the lock) are reported: by default
with a ``DuplicateRowsWarning`` and the later copies dropped.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import sys
import time
import uuid
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .mixed_columns import (
    COUNT_COLUMN,
    SIZE_COLUMN,
    SIZES_COLUMN,
    class_sizes_as_tuples,
    nested_as_json,
    split_class_sizes,
)

__all__ = [
    "atomic_write",
    "ResultStore",
    "StoreError",
    "DuplicateRowsWarning",
    "load_results",
    "load_results_arrow",
    "load_traces",
    "refuse_new_configs",
    "KEY_COLUMNS",
    "ROW_KEY",
    "DEFAULT_SOURCE",
]

KEY_COLUMNS = ("config_hash", "seed")  # required in every chunk file
ROW_KEY = ("config_hash", "source", "seed")  # identifies a row; ``source`` may be missing
DEFAULT_SOURCE = "random"  # the ``source`` of rows without one (files from before the column)
DATA_DIR = "data"
TRACE_DIR = "traces"
MANIFEST = "manifest.json"
_TMP = ".tmp-"
_LOCK = ".lock-"
SCHEMA_KEY = b"ufm.columns"  # Parquet schema metadata: {column: meaning (unit)}

try:  # POSIX advisory locks; on other platforms the lock is a plain file (best effort)
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None


class StoreError(OSError):
    """The result folder cannot be written or read, or is in use; the message names the path."""


class DuplicateRowsWarning(UserWarning):
    """A results folder holds several rows with the same key."""


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds (Windows)
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, write, writer: str = "w") -> None:
    """Write ``path`` through a temporary file (``write(fileobj)``), fsync, rename, fsync dir."""
    tmp = path.with_name(f"{_TMP}{writer}-{os.getpid()}-{uuid.uuid4().hex[:6]}-{path.name}.part")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


class ResultStore:
    """The result folder of one job, seen from one writer.

    Args:
        folder: the output folder (created by :meth:`prepare`).
        writer: this process's writer id (default ``p<process_index>``).
        lock_timeout: seconds to wait for the writer lock before refusing (default 0: refuse
            at once; array tasks wait a little for a previous attempt that is still exiting).
        process_index, process_count: this process in a multi-process run.
    """

    def __init__(
        self,
        folder,
        process_index: int = 0,
        process_count: int = 1,
        writer: str | None = None,
        lock_timeout: float = 0.0,
    ):
        self.folder = Path(folder)
        self.data = self.folder / DATA_DIR
        self.traces = self.folder / TRACE_DIR
        self.process_index = process_index
        self.process_count = process_count
        self.writer = writer or f"p{process_index}"
        self.lock_timeout = float(lock_timeout)
        self._lock_fd = None

    # -- setup and the writer lock -------------------------------------------------------------
    def prepare(self) -> None:
        """Create the folder, take this writer's lock, prove the folder writable, clean stale
        temporary files.

        Raises :class:`StoreError` naming the folder (not writable) or the lock's holder, before
        any compute happens.
        """
        try:
            self.data.mkdir(parents=True, exist_ok=True)
            self.acquire()
            probe = self.data / f"{_TMP}{self.writer}-probe-{uuid.uuid4().hex[:8]}"
            with open(probe, "wb") as f:
                f.write(b"ok")
                f.flush()
                os.fsync(f.fileno())
            probe.unlink(missing_ok=True)
        except StoreError:
            raise
        except OSError as err:
            self.release()
            reason = err.strerror or str(err)
            raise StoreError(
                f"output folder {str(self.folder)!r} is not writable ({reason}); "
                "choose another folder (--out DIR or `out` in the spec)"
            ) from None
        self.clean_temp()

    def acquire(self) -> None:
        """Take the lock of this writer id, or raise :class:`StoreError` naming its holder."""
        if self._lock_fd is not None:
            return
        path = self.folder / f"{_LOCK}{self.writer}"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            deadline = time.monotonic() + self.lock_timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError:
                    if time.monotonic() < deadline:  # e.g. a resubmitted array task whose
                        time.sleep(0.5)  # previous attempt is still exiting
                        continue
                holder = _read_holder(path)
                os.close(fd)
                raise StoreError(
                    f"results folder {str(self.folder)!r} is in use by another writer "
                    f"({holder}); wait for it to finish, or choose another folder"
                ) from None
        info = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(sys.argv)[:300],
        }
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(info).encode())
        self._lock_fd = fd

    def release(self) -> None:
        """Release this writer's lock (also released when the process ends)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> ResultStore:
        self.prepare()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def _writer_free(self, writer: str) -> bool:
        if writer == self.writer:
            return self._lock_fd is not None
        if fcntl is None:
            return False
        path = self.folder / f"{_LOCK}{writer}"
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return True
        finally:
            os.close(fd)

    def clean_temp(self) -> int:
        """Remove temporary files left by killed runs whose writer's lock is free; return how
        many. In-flight files of live writers are never touched."""
        removed = 0
        for folder in (self.folder, self.data, self.traces):
            if not folder.is_dir():
                continue
            for path in folder.iterdir():
                if not path.name.startswith(_TMP):
                    continue
                writer = path.name[len(_TMP) :].split("-", 1)[0]
                if self._writer_free(writer):
                    path.unlink(missing_ok=True)
                    removed += 1
        return removed

    # -- chunks --------------------------------------------------------------------------------
    def chunk_files(self) -> list[Path]:
        """Finished chunk files, sorted by name (temp files excluded)."""
        if not self.data.is_dir():
            return []
        return sorted(
            p for p in self.data.iterdir() if p.suffix == ".parquet" and not p.name.startswith(".")
        )

    def write_chunk(self, table: pa.Table, column_docs: dict | None = None) -> Path:
        """Atomically write one chunk's rows; returns the final path. ``column_docs`` (column ->
        meaning) goes into the Parquet schema metadata."""
        for k in KEY_COLUMNS:
            if k not in table.column_names:
                raise ValueError(f"chunk table lacks the key column {k!r}")
        if table.num_rows == 0:
            raise ValueError("refusing to write an empty chunk")
        if column_docs:
            docs = {k: column_docs[k] for k in table.column_names if k in column_docs}
            table = table.replace_schema_metadata(
                {**(table.schema.metadata or {}), SCHEMA_KEY: json.dumps(docs).encode()}
            )
        first = table.column("config_hash")[0].as_py()
        seed0 = table.column("seed")[0].as_py()
        name = f"{first}-{self.writer}-s{seed0:010d}-{uuid.uuid4().hex[:8]}.parquet"
        final = self.data / name
        atomic_write(final, lambda f: pq.write_table(table, f, compression="zstd"), self.writer)
        return final

    def write_trace(self, config_hash: str, seed0: int, arrays: dict) -> Path:
        """Atomically write the trace arrays of one chunk (``.npz``) next to its rows."""
        self.traces.mkdir(parents=True, exist_ok=True)
        final = (
            self.traces / f"{config_hash}-{self.writer}-s{seed0:010d}-{uuid.uuid4().hex[:8]}.npz"
        )
        atomic_write(final, lambda f: np.savez_compressed(f, **arrays), self.writer)
        return final

    def done_keys(self) -> dict[str, set[tuple[str, int]]]:
        """``{config_hash: {(source, seed) with a stored row}}`` read from the key columns only."""
        done: dict[str, set[tuple[str, int]]] = {}
        for path in self.chunk_files():
            t = _read_keys(path)
            for h, src, s in zip(*(t.column(k).to_pylist() for k in ROW_KEY)):
                done.setdefault(h, set()).add((src, s))
        return done

    def done_seeds(self, source: str = DEFAULT_SOURCE) -> dict[str, set[int]]:
        """``{config_hash: {seeds of ``source`` starts with a stored row}}``."""
        out: dict[str, set[int]] = {}
        for h, keys in self.done_keys().items():
            seeds = {s for src, s in keys if src == source}
            if seeds:
                out[h] = seeds
        return out

    # -- manifest ------------------------------------------------------------------------------
    def read_manifest(self) -> dict | None:
        path = self.folder / MANIFEST
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise StoreError(f"cannot read {str(path)!r}: {err}") from None

    def write_manifest(self, doc: dict) -> None:
        """Atomically replace ``manifest.json``."""
        blob = json.dumps(doc, indent=1, sort_keys=True, allow_nan=False).encode()
        atomic_write(self.folder / MANIFEST, lambda f: f.write(blob), self.writer)


def refuse_new_configs(folder, hashes, *, extend: bool = False) -> None:
    """Refuse, before any compute, to add configurations to a results folder that holds others.

    The rule of :func:`ufm.runs.run_experiment_job` and the sweeps, checked up front by the
    commands that run several configurations into one folder: unless ``extend``, a ``folder``
    whose manifest lists configurations must already hold every one of ``hashes`` (their
    configuration hashes); rerunning some or all of its own configurations is a resume. Raises
    :class:`StoreError` (one line, naming the folder and ``--extend``).
    """
    if extend:
        return
    known = set((ResultStore(folder).read_manifest() or {}).get("configs", {}))
    new = set(hashes) - known
    if known and new:
        raise StoreError(
            f"{str(Path(folder))!r} already holds results of {len(known)} other "
            f"configuration(s) and not of {len(new)} of these; use --extend (extend=True) to add "
            "them, or choose another --out"
        )


def _read_holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return "holder unknown"
    return (
        f"pid {info.get('pid', '?')} on {info.get('host', '?')} since "
        f"{info.get('started', '?')}: {info.get('command', '?')}"
    )


def _read(path: Path, columns=None) -> pa.Table:
    try:
        return pq.read_table(path, columns=columns)
    except (OSError, pa.ArrowException) as err:
        raise StoreError(f"cannot read result file {str(path)!r}: {err}") from None


def _read_keys(path: Path) -> pa.Table:
    """The row-key columns of one file, ``source`` filled with :data:`DEFAULT_SOURCE` if absent."""
    try:
        names = pq.read_schema(path).names
    except (OSError, pa.ArrowException) as err:
        raise StoreError(f"cannot read result file {str(path)!r}: {err}") from None
    t = _read(path, [k for k in ROW_KEY if k in names])
    if "source" not in names:
        t = t.append_column("source", pa.array([DEFAULT_SOURCE] * t.num_rows, pa.string()))
    return t


def _row_key(table: pa.Table) -> list[str]:
    key = [k for k in ROW_KEY if k in table.column_names]
    return key + (["epoch"] if "epoch" in table.column_names else [])


def load_results_arrow(folder, columns=None, *, duplicates: str = "warn") -> pa.Table:
    """All rows of a results folder as one ``pyarrow.Table``, sorted by the row key
    ``(config_hash, source, seed[, epoch])``.

    Concatenates every chunk file of every writer; ``columns`` selects a subset (missing columns
    of some files become nulls, except ``source``, which reads as ``"random"``). ``duplicates``:
    what to do with rows whose key appears more than once: ``"warn"`` (default: a
    :class:`DuplicateRowsWarning` with the count, later copies dropped), ``"drop"`` (silently),
    ``"keep"``, or ``"raise"`` (:class:`StoreError`). Raises :class:`StoreError` if ``folder``
    does not exist.

    Class sizes: the UFM's ``n`` is stored as an int for balanced classes and as the list of class
    sizes otherwise. A folder with balanced configurations only reads ``n`` as an int column, as
    stored. As soon as one configuration of the folder has unequal class sizes, ``n`` reads as an
    int64 column that is null for the imbalanced rows, and a ``class_sizes`` column (a list of
    ``K`` ints for every row, ``K`` copies of ``n`` for the balanced ones) is added after it: so
    ``n == 4`` selects the same balanced rows whatever else shares the folder, and ``class_sizes``
    describes every row. Any other column that is a list in some files and a scalar in others
    reads as JSON strings (``json.loads`` parses them).
    """
    if duplicates not in ("warn", "drop", "keep", "raise"):
        raise ValueError(f"duplicates must be warn, drop, keep or raise; got {duplicates!r}")
    store = ResultStore(folder)
    if not store.folder.is_dir():
        raise StoreError(f"no results in {str(store.folder)!r}: folder does not exist")
    files = store.chunk_files()
    if not files:
        return pa.table(
            {"config_hash": pa.array([], pa.string()), "seed": pa.array([], pa.int64())}
        )
    tables = []
    keep = None if columns is None else set(columns) | set(ROW_KEY) | {"epoch"}
    if keep is not None and keep & {SIZE_COLUMN, SIZES_COLUMN}:
        keep |= {SIZE_COLUMN, COUNT_COLUMN}  # class_sizes is built from them
    for path in files:
        t = _read(path)
        if keep is not None:
            t = t.select([c for c in t.column_names if c in keep])
        tables.append(t.replace_schema_metadata(None))
    tables = split_class_sizes(tables)
    try:
        try:
            table = pa.concat_tables(tables, promote_options="permissive")
        except pa.ArrowException:
            table = pa.concat_tables(nested_as_json(tables), promote_options="permissive")
    except pa.ArrowException as err:
        raise StoreError(
            f"the result files of {str(store.folder)!r} have incompatible columns "
            f"(e.g. two models with a field of different types): {err}"
        ) from None
    if "source" in table.column_names:
        i = table.column_names.index("source")
        table = table.set_column(i, "source", pc.fill_null(table.column("source"), DEFAULT_SOURCE))
    key = _row_key(table)
    if duplicates != "keep" and all(k in key for k in KEY_COLUMNS) and table.num_rows:
        table = _drop_duplicates(table, key, duplicates, store.folder)
    if all(k in key for k in KEY_COLUMNS):
        table = table.sort_by([(k, "ascending") for k in key])
    if columns is not None:
        table = table.select([c for c in columns if c in table.column_names])
    return table


def _drop_duplicates(table: pa.Table, key: list[str], mode: str, folder: Path) -> pa.Table:
    cols = [table.column(k).to_pylist() for k in key]
    seen, keep = set(), np.zeros(table.num_rows, bool)
    for i, k in enumerate(zip(*cols)):
        if k not in seen:
            seen.add(k)
            keep[i] = True
    dup = int(table.num_rows - keep.sum())
    if not dup:
        return table
    msg = (
        f"{dup} duplicate row(s) (same {', '.join(key)}) in {str(folder)!r}: written twice by "
        "concurrent writers"
    )
    if mode == "raise":
        raise StoreError(msg)
    if mode == "warn":
        warnings.warn(msg + "; later copies dropped", DuplicateRowsWarning, stacklevel=3)
    return table.filter(pa.array(keep))


def count_duplicates(folder) -> int:
    """Rows whose key ``(config_hash, source, seed[, epoch])`` is stored more than once."""
    t = load_results_arrow(folder, columns=list(ROW_KEY) + ["epoch"], duplicates="keep")
    if not t.num_rows:
        return 0
    cols = [t.column(k).to_pylist() for k in _row_key(t)]
    return t.num_rows - len(set(zip(*cols)))


def load_results(folder, columns=None, *, duplicates: str = "warn"):
    """All rows of a results folder as a ``pandas.DataFrame`` (one row per configuration x start,
    or x checkpoint for training runs); see :func:`load_results_arrow`.

    Where the folder holds unequal class sizes, ``class_sizes`` holds tuples of ints (hashable:
    ``rows.groupby("class_sizes")``, ``rows[rows.class_sizes.isin([(4, 4, 1)])]``) and ``n`` is a
    nullable ``Int64`` column (``<NA>`` for those rows; ``rows[rows.n == 4]`` selects the balanced
    rows with 4 samples per class).

    Example:
        >>> import ufm, tempfile
        >>> ufm.load_results(tempfile.mkdtemp()).shape
        (0, 2)
    """
    try:
        import pandas  # noqa: F401  (lazy: pandas is an optional dependency)
    except ImportError:
        raise ImportError(
            "load_results needs pandas (pip install pandas); "
            "ufm.runs.load_results_arrow returns a pyarrow.Table without it"
        ) from None
    df = load_results_arrow(folder, columns, duplicates=duplicates).to_pandas()
    return class_sizes_as_tuples(df)


def column_docs(folder) -> dict:
    """``{column: meaning (unit)}`` from the Parquet metadata of a results folder's files."""
    out: dict = {}
    for path in ResultStore(folder).chunk_files():
        meta = pq.read_schema(path).metadata or {}
        if SCHEMA_KEY in meta:
            out.update(json.loads(meta[SCHEMA_KEY]))
    return out


def load_traces(folder) -> dict:
    """The optimisation traces of a results folder: ``{config_hash: {name: array}}``, chunks of
    one configuration concatenated along the seed axis (``step`` is shared; shorter traces are
    padded with their last row, as seeds stay put once converged), plus ``seed`` and ``source``."""
    tdir = Path(folder) / TRACE_DIR
    groups: dict = {}
    for path in sorted(tdir.glob("*.npz")) if tdir.is_dir() else []:
        h = path.name.split("-", 1)[0]
        with np.load(path, allow_pickle=False) as z:
            groups.setdefault(h, []).append({k: z[k] for k in z.files})
    out = {}
    for h, parts in groups.items():
        rows = max(len(p["step"]) for p in parts)
        merged = {"step": next(p["step"] for p in parts if len(p["step"]) == rows)}
        for k in parts[0]:
            if k == "step":
                continue
            arrs = []
            for p in parts:
                a = p[k]
                if a.ndim == 2 and a.shape[0] < rows:
                    a = np.concatenate([a, np.repeat(a[-1:], rows - a.shape[0], axis=0)])
                arrs.append(a)
            merged[k] = np.concatenate(arrs, axis=-1)
        out[h] = merged
    return out
