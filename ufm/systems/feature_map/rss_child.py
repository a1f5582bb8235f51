"""Child process of :func:`ufm.systems.feature_map.peak_rss`: train one seed, print peak RSS.

``python -m ufm.systems.feature_map.rss_child '<spec fields as JSON>'`` loads the data, records
the peak RSS so far (``rss_before_bytes``), trains seed 0 and prints one JSON line with
``rss_peak_bytes``, ``rss_before_bytes`` and ``rss_delta_bytes``.
"""

from __future__ import annotations

import json
import sys

import jax
import jax.numpy as jnp

from .etf import rss_bytes
from .experiment import train_seeds
from .model import data_info
from .spec import FeatureMapSpec


def main(doc: str) -> None:
    fields = json.loads(doc)
    for k in ("widths", "channels", "checkpoints"):
        fields[k] = tuple(fields[k])
    spec = FeatureMapSpec(**fields)
    if spec.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    data_info(spec)  # the data are loaded before the baseline
    jnp.zeros(1).block_until_ready()
    before = rss_bytes()
    res, _ = train_seeds(spec, [0], devices=1)
    jax.block_until_ready(res.params)
    peak = rss_bytes()
    out = {"rss_peak_bytes": peak, "rss_before_bytes": before, "rss_delta_bytes": peak - before}
    print(json.dumps(out))


if __name__ == "__main__":  # pragma: no cover (run by peak_rss in a subprocess)
    main(sys.argv[1])
