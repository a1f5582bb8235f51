"""Child process of :func:`ufm.systems.feature_map.peak_rss`: train one seed, print peak RSS.

``python -m ufm.systems.feature_map.rss_child '<spec fields as JSON>'`` loads the data, records
the RSS (``rss_before_bytes``), resets the peak (Linux), trains seed 0 and prints one JSON line
with ``rss_peak_bytes`` (peak while training), ``rss_before_bytes``, ``rss_delta_bytes`` and
``peak_reset``.
"""

from __future__ import annotations

import json
import sys

import jax
import jax.numpy as jnp

from .etf import peak_rss_bytes, reset_peak_rss, rss_bytes
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
    reset = reset_peak_rss()
    res, _ = train_seeds(spec, [0], devices=1)
    jax.block_until_ready(res.params)
    peak = peak_rss_bytes()
    out = {
        "rss_peak_bytes": peak,
        "rss_before_bytes": before,
        "rss_delta_bytes": peak - before,
        "peak_reset": reset,
    }
    print(json.dumps(out))


if __name__ == "__main__":  # pragma: no cover (run by peak_rss in a subprocess)
    main(sys.argv[1])
