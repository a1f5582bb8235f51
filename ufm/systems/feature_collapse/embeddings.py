"""Final embeddings of trained seeds, kept next to the result rows for the figures.

``DIR/embeddings/<config_hash>/seed-<s>.npz`` holds the ``(n_w, d)`` embedding ``W`` of one seed
at the end of training (the rows hold only scalars). Written atomically (a temporary file renamed
into place), so an interrupted job never leaves a truncated file.
"""

from __future__ import annotations

import io
import os
import uuid
from pathlib import Path

import numpy as np

__all__ = ["embedding_path", "load_embeddings", "save_embeddings"]


def embedding_path(folder, config_hash: str, seed: int) -> Path:
    """``folder/embeddings/<config_hash>/seed-<seed>.npz``."""
    return Path(folder) / "embeddings" / config_hash / f"seed-{int(seed)}.npz"


def save_embeddings(folder, config_hash: str, seeds, W) -> None:
    """Save ``W[i]`` (leading seed axis) as the embedding of ``seeds[i]``."""
    for s, w in zip(seeds, np.asarray(W)):
        path = embedding_path(folder, config_hash, s)
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.savez(buf, W=w)
        tmp = path.with_name(f".tmp-{os.getpid()}-{uuid.uuid4().hex[:6]}-{path.name}")
        try:
            tmp.write_bytes(buf.getvalue())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def load_embeddings(folder, config_hash: str, seed: int):
    """The final embedding ``W`` (``(n_w, d)``) of one seed, or ``None`` if it was not kept."""
    path = embedding_path(folder, config_hash, seed)
    if not path.exists():
        return None
    with np.load(path) as f:
        return f["W"]
