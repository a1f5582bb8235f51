"""The deep unconstrained feature model (L-DUFM): deep neural collapse versus low-rank solutions.

Sukenik, Mondelli, Lampert 2023 (arXiv 2305.13165); Sukenik, Lampert, Mondelli 2024
(arXiv 2405.14468); the CE variant of Garrod & Keating 2024 (arXiv 2410.23169). Formulas:
docs/theory.md section 4. This package registers the ``"deep_ufm"`` system; ``ufm.deep`` is this
namespace (``ufm.deep.dnc_loss``, ``ufm.deep.srg_construction``, ...).
"""

from ...core.registry import System, register_system
from ...runs.schema import register_column_docs
from .facts import (
    KINKED,
    deep_classification_check,
    deep_classification_facts,
    deep_num_global_params,
    deep_validate_params,
    deep_zero_mode_count,
)
from .metrics import deep_metric_names, deep_metrics, deep_metrics_hook
from .model import (
    ACTIVATIONS,
    DeepFeatures,
    DeepUFMParams,
    DeepUFMSpec,
    activation_fn,
    deep_class_means,
    deep_features,
    deep_init,
    deep_loss,
    deep_loss_terms,
    deep_split_features,
)
from .theory import (
    SRGSolution,
    deep_reference_value,
    dnc_constant,
    dnc_loss,
    dnc_point,
    edge_incidence,
    power_objective_min,
    srg_construction,
    srg_loss,
    srg_ratio,
)

__all__ = [
    "ACTIVATIONS",
    "DeepFeatures",
    "DeepUFMParams",
    "DeepUFMSpec",
    "KINKED",
    "SRGSolution",
    "activation_fn",
    "deep_class_means",
    "deep_classification_check",
    "deep_classification_facts",
    "deep_features",
    "deep_init",
    "deep_loss",
    "deep_loss_terms",
    "deep_metric_names",
    "deep_metrics",
    "deep_metrics_hook",
    "deep_num_global_params",
    "deep_reference_value",
    "deep_split_features",
    "deep_validate_params",
    "deep_zero_mode_count",
    "dnc_constant",
    "dnc_loss",
    "dnc_point",
    "edge_incidence",
    "power_objective_min",
    "srg_construction",
    "srg_loss",
    "srg_ratio",
    "SYSTEM",
]


def _examples():
    """Small specs: deep linear MSE (the DNC reference applies), tanh CE with free biases."""
    return (
        DeepUFMSpec(K=3, n=2, L=2, widths=4, activation="identity"),
        DeepUFMSpec(K=3, n=2, L=3, widths=(4, 3, 5), activation="tanh", loss="ce", bias="free"),
    )


def _label(spec: DeepUFMSpec) -> str:
    widths = "x".join(str(w) for w in spec.widths)
    return (
        f"deep {spec.loss}-{spec.bias} {spec.activation} K={spec.K} n={spec.n} L={spec.L} "
        f"widths={widths}"
    )


SYSTEM = register_system(
    System(
        name="deep_ufm",
        spec_type=DeepUFMSpec,
        loss=deep_loss,
        init=deep_init,
        examples=_examples,
        summary="deep unconstrained feature model (L layers; deep neural collapse vs low rank)",
        validate_params=deep_validate_params,
        metrics=deep_metrics_hook,
        metric_options=("rtol", "tau"),
        reference_value=deep_reference_value,
        classification=deep_classification_facts,
        classification_check=deep_classification_check,
        num_global_params=deep_num_global_params,
        split_features=deep_split_features,
        label=_label,
    )
)

register_column_docs(
    {
        "dnc1_pinv_*": "deep UFM: DNC1 Tr(Sigma_W Sigma_B^+)/K of layer features (H_l post-, Z_l "
        "pre-activation)",
        "dnc1_quot_*": "deep UFM: DNC1 Tr Sigma_W / Tr Sigma_B of layer features",
        "dnc2_*": "deep UFM: DNC2 frame error of the layer class means (orthogonal frame after "
        "ReLU, simplex ETF otherwise)",
        "rank_*": "deep UFM: numerical rank of the layer class means (count, threshold tau)",
        "dnc3_span_W*": "deep UFM: DNC3 misalignment of the row space of W_l with its input class "
        "means",
        "dnc3_row_W*": "deep UFM: DNC3 misalignment of the rows of W_l with its input class means",
        "dnc3_papyan_W*": "deep UFM: self-duality of the last layer (Papyan's NC3)",
    }
)
