"""Named feature-collapse settings (Laurent, von Brecht, Bresson 2023, arXiv 2305.16162).

:data:`PRESETS` maps a name to one :class:`FeatureCollapseSpec`. :data:`JOB_PRESETS` maps the
names accepted by ``ufm feature-collapse --preset NAME`` to a :class:`JobPreset`: the
configurations the job runs (``zipf-gap`` runs the Zipf data set without and with LayerNorm, the
comparison the paper makes), the default number of seeds and of checkpoints. The CPU presets were
measured on a 2-core machine (benchmarks/feature_collapse_presets.md); the ``paper*`` presets are
the paper's full settings, the GPU path.
"""

from __future__ import annotations

from typing import NamedTuple

from .spec import FeatureCollapseSpec

__all__ = ["JOB_PRESETS", "PRESETS", "JobPreset"]

_PAPER = FeatureCollapseSpec()  # n_c 3, n_w 1200, L 15, K 1000, d 100, nspl 5, SGD 0.1, wd 1e-3
_TINY = FeatureCollapseSpec(n_w=120, L=8, K=64, d=32, nspl=5, batch_size=32, epochs=300)

PRESETS: dict[str, FeatureCollapseSpec] = {
    # seconds: the test preset
    "tiny": _TINY,
    "tiny-ln": _TINY.replace(layernorm=True),
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


class JobPreset(NamedTuple):
    """What ``ufm feature-collapse --preset NAME`` runs.

    Attributes:
        configs: the configurations (one results-folder configuration each).
        seeds: default number of seeds (``--seeds``).
        checkpoints: default number of evenly spaced checkpoints (``--checkpoints``; early
            log-spaced epochs are added, see :func:`.job.checkpoint_epochs`).
        about: one line for ``--help`` and the docs.
    """

    configs: tuple
    seeds: int
    checkpoints: int
    about: str


JOB_PRESETS: dict[str, JobPreset] = {
    "tiny": JobPreset(
        (PRESETS["tiny"], PRESETS["tiny-ln"]),
        2,
        10,
        "seconds: the test preset, without and with LN",
    ),
    "small": JobPreset(
        (PRESETS["small"],), 3, 20, "type I: K=50, nspl=100, uniform; ||w|| vs 0.616024"
    ),
    "zipf-gap": JobPreset(
        (PRESETS["zipf-gap"], PRESETS["zipf-gap-ln"]),
        2,
        30,
        "K=200, nspl=5, Zipf, without (type III) and with LayerNorm (type II)",
    ),
    "zipf-gap-ln": JobPreset(
        (PRESETS["zipf-gap-ln"],), 3, 30, "the LayerNorm half of zipf-gap (type II)"
    ),
    "type3": JobPreset(
        (PRESETS["type3"],), 3, 20, "type-III closed form: all K = 3^4 latents, Zipf, no LN"
    ),
    "paper": JobPreset((PRESETS["paper"],), 1, 20, "GPU: the paper's uniform run (type I, K=1000)"),
    "paper-zipf": JobPreset(
        (PRESETS["paper-zipf"], PRESETS["paper-zipf-ln"]),
        1,
        30,
        "GPU: the paper's Zipf runs without and with LayerNorm (K=1000)",
    ),
}
