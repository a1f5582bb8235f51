"""Named experiments: ``tiny``, ``digits``, ``synthetic`` and the paper-scale ``paper`` path.

A :class:`Preset` is a base :class:`SpectralSpec` (as field values), a list of *variants* (the
methods compared: one spec each) and a seed count. ``ufm spectral --preset NAME`` runs every
variant over the seeds into one results folder (one row per method x seed x checkpoint).

The comparison of the issue (:data:`COMPARISON`): plain cosine alignment (collapses), the power ST
sweep ``p in {0, 0.25, 0.4, 0.5, 0.6, 0.75, 1}`` (``p = 0.5`` is the ``whiten`` run: the power ST at
``p = 1/2`` *is* exact ZCA whitening, it is not run twice), IterNorm (``T = 4``) without the trace
loss, INTL (``T = 4``, official ``beta``), W-MSE (official ``eps = 0``: an absolute shrinkage
``(1 - eps) Sigma + eps I`` lets the network shrink ``Z`` below ``eps`` and collapse); all on the
feature side, plus INTL on the instance side (the official default ``axis=0``).

* ``tiny``: about a minute on 2 CPU cores with a cold compilation cache, 15 s warm (the tests
  and the notebook's fast mode use it): latent-factor data of rank 4 in 16 dimensions (400
  samples, 4 classes), MLP 16-32, projector 32-32-16 (``d = 16``: the official feature-side
  INTL ``beta = 0.01 (log2 16 - 3)`` is 0.01; at ``d = 8`` it would be 0), batch 32, Adam 3e-3,
  30 epochs of 10 steps; alignment, ``p = 0.25``, whitening, ``p = 0.75``, IterNorm, INTL;
  2 seeds.
* ``digits``: the issue's setting: sklearn digits, MLP 64-256-256, projector 256-256-64
  (``d = 64``), batch 128, Adam 1e-3, views with one-pixel shifts, noise 0.1 and pixel dropout
  0.1; the full comparison over 5 seeds.
* ``synthetic``: latent-factor data of known rank 8 in 64 dimensions (10 classes, no noise), the
  same networks and comparison: collapse is unambiguous (the data have exactly 8 directions).
* ``paper``: the paper-scale GPU path on a user folder of ``.npy`` files (``--data-dir``, e.g.
  CIFAR-10 saved channels-first ``(n, 3, 32, 32)`` with pixels in ``[0, 1]``, see
  :func:`ufm.data.load_npy_folder`). The paper trains a ResNet-18; ``ufm.nets`` has none, so the
  encoder is its CNN body (conv channels 32-64-128, 2 x 2 pooling, 512 features), projector
  512-1024-512, batch 256, 200 epochs, shifts of up to 4 pixels. A documented path, not a
  reproduction (docs/spectral.md); it was not run here (no GPU).
"""

from __future__ import annotations

import dataclasses

from ufm.core import SpecError
from ufm.systems.spectral.spec import SpectralSpec

#: The power sweep of the issue (``p = 0.5`` is served by the ``whiten`` variant).
POWERS = (0.0, 0.25, 0.4, 0.5, 0.6, 0.75, 1.0)


def comparison(powers=POWERS) -> tuple[dict, ...]:
    """Variants of the method comparison (module docstring); the side comes from the base."""
    out = [{"method": "alignment"}]
    for p in powers:
        out.append({"method": "whiten"} if p == 0.5 else {"method": "power", "p": p})
    out += [
        {"method": "iternorm", "n_iter": 4},
        {"method": "intl", "n_iter": 4},
        {"method": "wmse", "eps": 0.0},
        {"method": "intl", "n_iter": 4, "side": "instance"},
    ]
    return tuple(out)


COMPARISON = comparison()


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named experiment: ``base`` spec fields, ``variants`` (per-method overrides), ``seeds``."""

    name: str
    summary: str
    base: dict
    variants: tuple
    seeds: int
    needs_data_dir: bool = False

    def specs(self, **overrides) -> list[SpectralSpec]:
        """One validated spec per variant; ``overrides`` (e.g. ``epochs``, ``data_dir``,
        ``dtype``) apply to all of them (``None`` values are ignored)."""
        over = {k: v for k, v in overrides.items() if v is not None}
        if self.needs_data_dir and not over.get("data_dir"):
            raise SpecError(f"preset {self.name!r} needs data_dir (--data-dir FOLDER)")
        base = {**self.base, **over}
        return [SpectralSpec(**{**base, **v}) for v in self.variants]


_DIGITS = {
    "data": "digits",
    "widths": (256, 256),
    "proj_widths": (256,),
    "proj_dim": 64,
    "batch_size": 128,
    "optimizer": "adam",
    "lr": 1e-3,
    "epochs": 40,
    "checkpoints": 8,
    "side": "feature",
}

PRESETS = {
    "tiny": Preset(
        "tiny",
        "about a minute (15 s with the compile cache): latent data (rank 4 in 16 dims), d = 16, "
        "6 methods x 2 seeds x 30 epochs",
        {
            "data": "latent",
            "latent_samples": 400,
            "latent_dim": 16,
            "latent_rank": 4,
            "latent_classes": 4,
            "widths": (32,),
            "proj_widths": (32,),
            "proj_dim": 16,
            "batch_size": 32,
            "epochs": 30,
            "checkpoints": 3,
            "lr": 3e-3,
            "side": "feature",
        },
        (
            {"method": "alignment"},
            {"method": "power", "p": 0.25},
            {"method": "whiten"},
            {"method": "power", "p": 0.75},
            {"method": "iternorm", "n_iter": 4},
            {"method": "intl", "n_iter": 4},
        ),
        2,
    ),
    "digits": Preset(
        "digits",
        "sklearn digits, MLP encoder + projector (d = 64), batch 128: the full comparison",
        _DIGITS,
        COMPARISON,
        5,
    ),
    "synthetic": Preset(
        "synthetic",
        "latent-factor data of known rank 8 in 64 dims: the full comparison",
        {
            **_DIGITS,
            "data": "latent",
            "latent_samples": 2000,
            "latent_dim": 64,
            "latent_rank": 8,
            "latent_classes": 10,
            "latent_noise": 0.0,
        },
        COMPARISON,
        5,
    ),
    "paper": Preset(
        "paper",
        "paper-scale GPU path: CNN encoder on a user .npy folder (e.g. CIFAR-10), batch 256",
        {
            "data": "folder",
            "encoder": "cnn",
            "widths": (32, 64, 128, 512),
            "proj_widths": (1024,),
            "proj_dim": 512,
            "batch_size": 256,
            "optimizer": "adam",
            "lr": 1e-3,
            "epochs": 200,
            "checkpoints": 10,
            "max_shift": 4,
            "noise_std": 0.05,
            "drop_prob": 0.0,
            "side": "feature",
        },
        COMPARISON,
        3,
        needs_data_dir=True,
    ),
}


def get_preset(name: str) -> Preset:
    """The preset called ``name`` (``SpecError`` listing the names otherwise)."""
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        raise SpecError(f"preset must be one of {', '.join(PRESETS)}; got {name!r}") from None
