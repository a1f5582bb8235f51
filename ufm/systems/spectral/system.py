"""The ``spectral`` system record: spec, hooks, presets and the ``ufm spectral`` command."""

from __future__ import annotations

from ufm.core import System, register_system
from ufm.systems.spectral.cli import add_spectral_parser
from ufm.systems.spectral.model import init_params, ssl_loss
from ufm.systems.spectral.presets import PRESETS
from ufm.systems.spectral.spec import SpectralSpec, spec_label

_TINY = {
    "data": "latent",
    "latent_samples": 60,
    "latent_dim": 6,
    "latent_rank": 3,
    "latent_classes": 3,
    "widths": (8,),
    "proj_widths": (8,),
    "proj_dim": 4,
    "batch_size": 12,
}


def examples() -> tuple:
    """Small specs for the conformance checks: smooth activations in float64 (the finite
    difference check), every family of objective (power ST, INTL, W-MSE) and a float32 digits
    spec with plain alignment."""
    return (
        SpectralSpec(**_TINY, method="power", p=0.25, activation="tanh", dtype="float64"),
        SpectralSpec(**_TINY, method="intl", beta=0.05, activation="gelu", dtype="float64"),
        SpectralSpec(**_TINY, method="wmse", eps=1e-3, activation="tanh", dtype="float64"),
        SpectralSpec(
            method="alignment",
            widths=(16,),
            proj_widths=(16,),
            proj_dim=8,
            batch_size=16,
            dtype="float32",
        ),
    )


SYSTEM = register_system(
    System(
        name="spectral",
        spec_type=SpectralSpec,
        loss=ssl_loss,
        init=init_params,
        examples=examples,
        summary="self-supervised encoder + projector: alignment, power ST, whitening, IterNorm, "
        "INTL, W-MSE (Weng et al. 2024)",
        label=spec_label,
        add_cli=add_spectral_parser,
        presets=PRESETS,
        sweepable=False,
    )
)
