"""Named experiment sets of ``ufm feature-map --preset NAME`` (measured numbers:
docs/feature_map.md; wall times: benchmarks/feature_map_presets.md).

A :class:`Preset` is a list of configurations, each ``(name, role, spec fields)``: role
``"spectra"`` (spectra and MF/EF verdicts over epochs, item 3 of the design) or ``"etf"`` (the
fixed simplex-ETF classifier at ``d = K`` against a learned classifier, with parameter counts and
memory). ``tiny`` runs in seconds (the tests use it); ``digits`` and ``etf`` are the CPU
experiments on sklearn's digits; ``paper`` is the GPU path on user data (``--data-dir FOLDER`` with
``x_train.npy, y_train.npy, x_test.npy, y_test.npy``, e.g. CIFAR-10 saved once by the user;
:func:`ufm.data.load_npy_folder`).
"""

from __future__ import annotations

import dataclasses

from ...core.validation import SpecError
from .spec import FeatureMapSpec

__all__ = ["Preset", "PRESETS", "ROLES"]

ROLES = ("spectra", "etf")


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named set of configurations (module docstring).

    Attributes:
        name, description: shown by ``ufm feature-map --list``.
        configs: ``((name, role, {spec field: value}), ...)``.
        seeds: default number of seeds per configuration.
        needs_data: the configurations read user data (``--data-dir FOLDER``).
        rss_epochs: epochs of the peak-RSS subprocess of the ``etf`` configurations (0: not
            measured).
    """

    name: str
    description: str
    configs: tuple
    seeds: int = 5
    needs_data: bool = False
    rss_epochs: int = 0

    def specs(
        self,
        mode: str = "all",
        *,
        only=None,
        data_path: str | None = None,
        channels_last: bool = False,
        epochs: int | None = None,
    ) -> list[tuple[str, str, FeatureMapSpec]]:
        """``[(name, role, spec)]`` of the configurations of ``mode`` (``"all"``, ``"spectra"``
        or ``"etf"``), optionally ``only`` the named ones, on user data (``data_path``), with
        ``epochs`` overridden (checkpoints beyond it dropped)."""
        if mode not in ("all", *ROLES):
            raise SpecError(f"mode must be one of all, {', '.join(ROLES)}; got {mode!r}")
        if self.needs_data and not data_path:
            raise SpecError(
                f"preset {self.name!r} needs --data-dir FOLDER (x_train.npy, y_train.npy, "
                "x_test.npy, y_test.npy)"
            )
        names = [c[0] for c in self.configs]
        unknown = sorted(set(only or ()) - set(names))
        if unknown:
            raise SpecError(
                f"configs: unknown configuration(s) {', '.join(unknown)} of preset "
                f"{self.name!r} (known: {', '.join(names)})"
            )
        out = []
        for name, role, fields in self.configs:
            if (mode != "all" and role != mode) or (only and name not in only):
                continue
            fields = dict(fields)
            if data_path:
                fields.update(data="folder", data_path=str(data_path), channels_last=channels_last)
                fields.pop("data_seed", None)
            if epochs is not None:
                fields["epochs"] = epochs
                cps = fields.get("checkpoints", ())
                fields["checkpoints"] = tuple(c for c in cps if c <= epochs)
            out.append((name, role, FeatureMapSpec(**fields)))
        if not out:
            raise SpecError(f"mode: preset {self.name!r} has no {mode!r} configuration")
        return out


def _c(name, role, **fields):
    return (name, role, fields)


# -- tiny: seconds, the tests' preset ----------------------------------------------------------
# MLP 64-128-128-10 on 500 digits, Adam 3e-3, batch 50, 40 epochs (400 steps): MSE reaches MF,
# training only the last layer stays EF (docs/feature_map.md)
_TINY = dict(widths=(128, 128), n_train=500, batch_size=50, lr=3e-3, epochs=40)
_TINY_ETF = dict(_TINY, loss="ce", checkpoints=(0, 10, 20, 40))

# -- digits: MLP 64-128-128-10 and the CNN (Nam et al. 2024), Adam 1e-3, batch 128 -------------
_MLP = dict(widths=(128, 128), batch_size=128, optimizer="adam", lr=1e-3, epochs=300)
# CNN (8, 16) -> 64: the seed-vmapped convolutions are slow on CPU (grouped convolutions)
_CNN = dict(net="cnn", channels=(8, 16), widths=(64,), batch_size=128, lr=1e-3, epochs=60)
_MIX = dict(data="mixture", batch_size=128, lr=1e-3, loss="ce", epochs=300)
# SGD controls for the lazy run: with Adam the 1/alpha^2 loss scale is normalised away (Adam is
# invariant to the gradient's scale), so the lazy regime needs plain gradient steps.
_SGD = dict(_MLP, optimizer="sgd", lr=0.5)

# -- paper: user data on a GPU, Adam 1e-3, analysis on 5000 training samples (eigh: p x p) ------
_P = dict(batch_size=128, lr=1e-3, epochs=100, analysis_n=5000, analysis_method="eigh")

# -- etf: learned classifier at large width vs fixed ETF at d = K (CE, Adam 1e-3) --------------
_ETF = dict(loss="ce", batch_size=128, lr=1e-3, epochs=200)

PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        "tiny",
        "seconds: MLP 64-128-128-10 on 500 digits, MSE, 40 epochs (full training: MF; last "
        "layer only: EF), and CE with a learned head at p = 128 against the fixed ETF head at "
        "p = K = 10 (64-128-10)",
        (
            _c("mlp-mse", "spectra", **_TINY),
            _c("mlp-mse-last-layer", "spectra", training="last_layer", **_TINY),
            _c("learned-128", "etf", **_TINY_ETF),
            _c(
                "etf-10",
                "etf",
                **dict(_TINY_ETF, widths=(128, 10)),
                head="etf",
                feature_activation="identity",
            ),
        ),
        seeds=2,
    ),
    "digits": Preset(
        "digits",
        "spectra over epochs on sklearn's digits: MLP 64-128-128-10 (MSE, CE; 300 epochs), CNN "
        "8-16-64 (MSE, CE; 60 epochs), last-layer-only and lazy (alpha = 100, SGD) controls with "
        "their SGD reference, and MLPs on the Gaussian mixture (width 128 and 512)",
        (
            _c("mlp-mse", "spectra", loss="mse", **_MLP),
            _c("mlp-ce", "spectra", loss="ce", **_MLP),
            _c("cnn-mse", "spectra", loss="mse", **_CNN),
            _c("cnn-ce", "spectra", loss="ce", **_CNN),
            _c("mlp-mse-last-layer", "spectra", loss="mse", training="last_layer", **_MLP),
            _c("mlp-mse-sgd", "spectra", loss="mse", **_SGD),
            _c("mlp-mse-sgd-lazy", "spectra", loss="mse", training="lazy", alpha=100.0, **_SGD),
            _c("mixture-mlp-128", "spectra", widths=(128, 128), **_MIX),
            _c(
                "mixture-mlp-512",
                "spectra",
                widths=(512, 512),
                analysis_n=1000,
                **dict(_MIX, epochs=100),
            ),
        ),
        seeds=5,
    ),
    "etf": Preset(
        "etf",
        "fixed simplex-ETF classifier at d = K = 10 against learned classifiers (p = 512 and "
        "p = 10) on digits: MLP 64-128-p, CE, Adam 1e-3, 200 epochs; ETF head with identity "
        "and with ReLU features",
        (
            _c("learned-512", "etf", widths=(128, 512), **_ETF),
            _c("learned-10", "etf", widths=(128, 10), feature_activation="identity", **_ETF),
            _c(
                "etf-10", "etf", widths=(128, 10), head="etf", feature_activation="identity", **_ETF
            ),
            _c("etf-10-relu", "etf", widths=(128, 10), head="etf", **_ETF),
        ),
        seeds=5,
        rss_epochs=2,
    ),
    "paper": Preset(
        "paper",
        "GPU path on user data (--data-dir FOLDER, e.g. CIFAR-10 with --channels-last): MLP "
        "512-512 and CNN (64, 128) -> 256 with CE and MSE, last-layer and lazy controls, "
        "and the ETF comparison with the CNN (learned p = 512 vs fixed ETF p = 10)",
        (
            _c("mlp-ce", "spectra", widths=(512, 512), loss="ce", **_P),
            _c("mlp-mse", "spectra", widths=(512, 512), loss="mse", **_P),
            _c("cnn-ce", "spectra", net="cnn", channels=(64, 128), widths=(256,), loss="ce", **_P),
            _c(
                "cnn-mse", "spectra", net="cnn", channels=(64, 128), widths=(256,), loss="mse", **_P
            ),
            _c(
                "cnn-ce-last-layer",
                "spectra",
                net="cnn",
                channels=(64, 128),
                widths=(256,),
                loss="ce",
                training="last_layer",
                **_P,
            ),
            _c(
                "cnn-mse-sgd-lazy",
                "spectra",
                net="cnn",
                channels=(64, 128),
                widths=(256,),
                loss="mse",
                training="lazy",
                alpha=100.0,
                **dict(_P, optimizer="sgd", lr=0.1),
            ),
            _c(
                "cnn-learned-512",
                "etf",
                net="cnn",
                channels=(64, 128),
                widths=(512,),
                loss="ce",
                **_P,
            ),
            _c(
                "cnn-etf-10",
                "etf",
                net="cnn",
                channels=(64, 128),
                widths=(10,),
                head="etf",
                feature_activation="identity",
                loss="ce",
                **_P,
            ),
        ),
        seeds=4,
        needs_data=True,
        rss_epochs=1,
    ),
}
