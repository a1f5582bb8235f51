"""Named feature-collapse settings (CPU presets measured on a 2-core machine; see
docs/feature_collapse.md for the numbers they reproduce)."""

from __future__ import annotations

from .spec import FeatureCollapseSpec

__all__ = ["PRESETS"]

_PAPER = FeatureCollapseSpec()  # n_c 3, n_w 1200, L 15, K 1000, d 100, nspl 5, SGD 0.1, wd 1e-3

PRESETS: dict[str, FeatureCollapseSpec] = {
    # seconds: the test preset
    "tiny": FeatureCollapseSpec(n_w=120, L=8, K=64, d=32, nspl=5, batch_size=32, epochs=300),
    # type I, the paper's K = 50 norm case (predicted ||w|| = 0.616024)
    "small": _PAPER.replace(K=50, nspl=100, epochs=400),
    # Zipf law, few samples: generalisation gap without LayerNorm (type III), none with (type II)
    "zipf-gap": _PAPER.replace(K=200, nspl=5, law="zipf", epochs=3000),
    "zipf-gap-ln": _PAPER.replace(K=200, nspl=5, law="zipf", layernorm=True, epochs=300),
    # type III with its closed form: all K = n_c^L latents, Zipf law, no LayerNorm
    "type3": FeatureCollapseSpec(
        n_w=60, L=4, K=81, d=32, nspl=100, law="zipf", latents="all", epochs=300
    ),
    # GPU path: the paper's figure 3 / 4 runs
    "paper": _PAPER,
    "paper-zipf": _PAPER.replace(law="zipf", epochs=3000),
    "paper-zipf-ln": _PAPER.replace(law="zipf", layernorm=True, epochs=500),
}
