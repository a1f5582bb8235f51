"""Columnar result store: one Parquet file per finished chunk, written atomically.

Layout of a sweep folder::

    DIR/manifest.json      configurations (hash -> fields, seed count), settings, runs
    DIR/data/*.parquet     one file per chunk: one row per (configuration, seed)
    DIR/figures/           written by ``ufm sweep report``

A chunk file is written to a hidden temporary file in ``DIR/data``, flushed and ``fsync``-ed,
then renamed into place with ``os.replace`` (atomic on POSIX and Windows), and the folder is
``fsync``-ed. A run killed at any moment therefore loses at most the chunk in flight and never
leaves a partial ``.parquet`` file; temporary files (``.tmp-*``) are ignored by the loaders and
removed on the next run. Rows are identified by ``(config_hash, source, seed)`` (``source`` is
``random``, ``planted`` or ``origin``; files written before the column existed hold random starts
only, so a missing ``source`` reads as ``"random"``): a rerun reads those columns of every file
(cheap in a columnar format) and skips finished starts, so resuming creates no duplicates.
Processes of a multi-host run write their own files (the process index is in the name), so no
file is ever shared between writers.

Read the results with :func:`load_results` (a pandas DataFrame; pandas is imported lazily) or
:func:`load_results_arrow` (a ``pyarrow.Table``, no pandas needed). Files from different
configurations may carry different analysis columns; they are unified, missing values null.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

__all__ = ["ResultStore", "StoreError", "load_results", "load_results_arrow", "KEY_COLUMNS",
           "ROW_KEY", "DEFAULT_SOURCE"]

KEY_COLUMNS = ("config_hash", "seed")  # required in every chunk file
ROW_KEY = ("config_hash", "source", "seed")  # identifies a row; ``source`` may be missing
DEFAULT_SOURCE = "random"  # the ``source`` of rows without one (files from before the column)
DATA_DIR = "data"
MANIFEST = "manifest.json"
_TMP = ".tmp-"


class StoreError(OSError):
    """The result folder cannot be written or read; the message names the path."""


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


class ResultStore:
    """The result folder of one sweep, seen from process ``process_index``.

    Args:
        folder: the sweep's output folder (created on :meth:`prepare`).
        process_index, process_count: this process in a multi-process run.
    """

    def __init__(self, folder, process_index: int = 0, process_count: int = 1):
        self.folder = Path(folder)
        self.data = self.folder / DATA_DIR
        self.process_index = process_index
        self.process_count = process_count

    # -- setup ---------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Create the folder, prove it writable (a probe file) and clean stale temp files.

        Raises :class:`StoreError` naming the folder before any compute happens.
        """
        try:
            self.data.mkdir(parents=True, exist_ok=True)
            probe = self.data / f"{_TMP}p{self.process_index}-probe-{uuid.uuid4().hex[:8]}"
            with open(probe, "wb") as f:
                f.write(b"ok")
                f.flush()
                os.fsync(f.fileno())
            probe.unlink()
        except OSError as err:
            reason = err.strerror or str(err)
            raise StoreError(f"output folder {str(self.folder)!r} is not writable ({reason}); "
                             "choose another folder (--out DIR or `out` in the spec)") from None
        self.clean_temp()

    def clean_temp(self) -> int:
        """Remove temp files left by killed runs of this process index; return how many.

        Process 0 also removes those of process indices beyond the current process count
        (left by an earlier run with more processes). In-flight files of the other current
        processes are never touched.
        """
        removed = 0
        for folder in (self.folder, self.data):
            if not folder.is_dir():
                continue
            for path in folder.iterdir():
                if not path.name.startswith(_TMP):
                    continue
                try:
                    owner = int(path.name[len(_TMP):].split("-", 1)[0].lstrip("p"))
                except ValueError:
                    owner = 0
                if owner == self.process_index or (self.process_index == 0
                                                   and owner >= self.process_count):
                    path.unlink(missing_ok=True)
                    removed += 1
        return removed

    # -- chunks --------------------------------------------------------------------------------
    def chunk_files(self) -> list[Path]:
        """Finished chunk files, sorted by name (temp files excluded)."""
        if not self.data.is_dir():
            return []
        return sorted(p for p in self.data.iterdir()
                      if p.suffix == ".parquet" and not p.name.startswith("."))

    def write_chunk(self, table: pa.Table) -> Path:
        """Atomically write one chunk's rows; returns the final path."""
        for k in KEY_COLUMNS:
            if k not in table.column_names:
                raise ValueError(f"chunk table lacks the key column {k!r}")
        if table.num_rows == 0:
            raise ValueError("refusing to write an empty chunk")
        first = table.column("config_hash")[0].as_py()
        seed0 = table.column("seed")[0].as_py()
        name = (f"{first}-p{self.process_index:03d}-s{seed0:010d}-"
                f"{uuid.uuid4().hex[:8]}.parquet")
        final = self.data / name
        tmp = self.data / f"{_TMP}p{self.process_index}-{os.getpid()}-{name}.part"
        try:
            with open(tmp, "wb") as f:
                pq.write_table(table, f, compression="zstd")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(self.data)
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
        path = self.folder / MANIFEST
        tmp = self.folder / f"{_TMP}p{self.process_index}-{os.getpid()}-{MANIFEST}.part"
        try:
            with open(tmp, "w") as f:
                json.dump(doc, f, indent=1, sort_keys=True, allow_nan=False)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(self.folder)


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


def load_results_arrow(folder, columns=None) -> pa.Table:
    """All rows of a sweep folder as one ``pyarrow.Table``, sorted by ``(config_hash, source,
    seed)`` (``(config_hash, seed)`` when no file has a ``source`` column).

    Concatenates every chunk file of every process; ``columns`` selects a subset (missing
    columns of some files become nulls, except ``source``, which reads as ``"random"``). Raises
    :class:`StoreError` if ``folder`` holds no sweep.
    """
    store = ResultStore(folder)
    if not store.folder.is_dir():
        raise StoreError(f"no sweep results in {str(store.folder)!r}: folder does not exist")
    files = store.chunk_files()
    if not files:
        return pa.table({"config_hash": pa.array([], pa.string()),
                         "seed": pa.array([], pa.int64())})
    tables = []
    for path in files:
        t = _read(path)
        if columns is not None:
            t = t.select([c for c in columns if c in t.column_names])
        tables.append(t)
    try:
        table = pa.concat_tables(tables, promote_options="permissive")
    except pa.ArrowException as err:
        raise StoreError(f"the result files of {str(store.folder)!r} have incompatible columns "
                         f"(e.g. two models with a field of different types): {err}") from None
    if "source" in table.column_names:
        i = table.column_names.index("source")
        table = table.set_column(i, "source", pc.fill_null(table.column("source"), DEFAULT_SOURCE))
    key = [k for k in ROW_KEY if k in table.column_names]
    if all(k in key for k in KEY_COLUMNS):
        table = table.sort_by([(k, "ascending") for k in key])
    return table


def load_results(folder, columns=None):
    """All rows of a sweep folder as a ``pandas.DataFrame`` (one row per configuration x seed).

    Example:
        >>> import ufm, tempfile
        >>> ufm.load_results(tempfile.mkdtemp()).shape
        (0, 2)
    """
    try:
        import pandas  # noqa: F401  (lazy: pandas is an optional dependency)
    except ImportError:
        raise ImportError("load_results needs pandas (pip install pandas); "
                          "load_results_arrow returns a pyarrow.Table without it") from None
    return load_results_arrow(folder, columns).to_pandas()
