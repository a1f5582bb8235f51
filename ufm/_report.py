"""Results folders of the landscape job: Parquet rows, summary tables, traces and figures."""

from __future__ import annotations

import csv
import datetime
import json
import os
import pathlib
from typing import Mapping, Optional

import numpy as np


def default_out_dir(name: str = "landscape") -> pathlib.Path:
    """``./ufm-results/<name>-YYYYmmdd-HHMMSS`` (a fresh folder per run)."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return pathlib.Path("ufm-results") / f"{name}-{stamp}"


def prepare_out_dir(out) -> pathlib.Path:
    """Create ``out`` (and ``out/figures``) or raise ``OSError`` naming it, before any compute."""
    out = pathlib.Path(out)
    try:
        (out / "figures").mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise OSError(f"output folder {str(out)!r} is not writable: {e.strerror or e}") from None
    return out


def write_rows(path, rows: Mapping[str, np.ndarray]) -> None:
    """Write per-seed columns to a Parquet file atomically (temp file + ``os.replace``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({k: np.asarray(v) for k, v in rows.items()})
    path = pathlib.Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def write_summary(out: pathlib.Path, summary: list[dict], table_text: str) -> None:
    with open(out / "summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(summary[0]))
        w.writeheader()
        w.writerows(summary)
    (out / "summary.txt").write_text(table_text + "\n")


def write_traces(out: pathlib.Path, traces: Mapping[str, Mapping]) -> None:
    arrays = {}
    index = {}
    for i, (label, tr) in enumerate(traces.items()):
        index[f"c{i}"] = label
        for k, v in tr.items():
            arrays[f"c{i}/{k}"] = np.asarray(v)
    np.savez_compressed(out / "traces.npz", **arrays)
    (out / "traces_index.json").write_text(json.dumps(index, indent=1))


def load_traces(out) -> dict:
    """Read back the traces written by :func:`write_traces`: ``{label: {name: array}}``."""
    out = pathlib.Path(out)
    index = json.loads((out / "traces_index.json").read_text())
    data = np.load(out / "traces.npz")
    traces = {label: {} for label in index.values()}
    for key in data.files:
        c, name = key.split("/", 1)
        traces[index[c]][name] = data[key]
    return traces


def save_figure(fig, path, *, dpi: int = 120) -> pathlib.Path:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return pathlib.Path(path)


def provenance(extra: Optional[dict] = None) -> dict:
    """ufm and jax versions, backend, devices, x64 and matmul precision, time."""
    import jax

    from ._version import __version__

    dev = jax.devices()[0]
    info = {
        "ufm_version": __version__,
        "jax_version": jax.__version__,
        "backend": jax.default_backend(),
        "device_kind": getattr(dev, "device_kind", str(dev)),
        "device_count": jax.device_count(),
        "x64": bool(jax.config.jax_enable_x64),
        "matmul_precision": str(jax.config.jax_default_matmul_precision),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    info.update(extra or {})
    return info
