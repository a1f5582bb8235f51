"""The single-layer unconstrained feature model (UFM): spec, objective, closed forms, landscape.

Zhu et al. 2021 (arXiv 2105.02375, CE), Zhou et al. 2022 (arXiv 2203.01238, MSE), Shen & Gu 2024
(arXiv 2407.10702, ``d = K``: strict saddles, no spurious minima). Formulas: docs/theory.md
sections 1-3. This package registers the ``"ufm"`` system (:mod:`ufm.core.registry`); the front
door re-exports its everyday names (``ufm.UFMSpec``, ``ufm.optimum``, ...).
"""

from ...core.registry import PlantedStarts, System, register_system
from .cli import add_landscape_parser
from .convex import (
    ConvexSolution,
    solve_convex,
    solve_convex_spec,
    ufm_prepare_spec,
    ufm_reference_value,
    with_convex_reference,
)
from .critical import find_critical_points, find_minima, planted_saddles, rank_restricted_points
from .facts import ufm_classification_facts, ufm_num_global_params, ufm_validate_params
from .imbalance import (
    ImbalancedOptimum,
    class_mean_gram,
    imbalanced_optimal_value,
    imbalanced_optimum,
    minority_threshold,
    mse_target_svd,
)
from .invariants import ufm_invariants
from .landscape import (
    DEFAULT_K,
    DEFAULT_VARIANTS,
    LANDSCAPE_OPTIMIZER,
    TRACE_METRICS,
    VARIANTS,
    LandscapeConfig,
    LandscapeRun,
    landscape_tables,
    load_landscape,
    run_landscape,
    trace_metrics,
    verdict,
)
from .metrics import ufm_nc_metrics
from .minority import (
    MINORITY_PRESETS,
    MinorityConfig,
    MinorityResult,
    minority_collapse,
    minority_geometry,
    plot_minority_collapse,
)
from .minority_cli import add_minority_parser
from .native_chunk import ufm_chunk_kernel as ufm_chunk_kernel
from .objective import (
    UFMParams,
    fit_grad,
    fit_term,
    labels,
    logits,
    one_hot_targets,
    ufm_init,
    ufm_loss,
)
from .plots import plot_optimal_value_vs_s
from .points import landscape_points, summarize_points
from .reduction import ufm_class_reduction
from .saddles import (
    Certificate,
    NegativeCurvature,
    certificate,
    negative_curvature_direction,
    pad_params,
    planted_saddle,
    rank_of,
    restrict_to_subspace,
    saddle_dims,
    zero_mode_count,
)
from .spec import UFMSpec, ufm_label
from .spectra import CollapseSpectrum, ce_std_matrix, collapse_spectrum
from .structure import UFMBlockArrow, ufm_block_arrow, ufm_split_features
from .theory import (
    Optimum,
    ce_optimal_rho,
    mse_bias_threshold,
    optimal_value,
    optimum,
    orthogonal_frame,
    simplex_etf,
)

__all__ = [
    "CollapseSpectrum",
    "ConvexSolution",
    "collapse_spectrum",
    "ce_std_matrix",
    "solve_convex",
    "solve_convex_spec",
    "with_convex_reference",
    "ufm_reference_value",
    "ufm_prepare_spec",
    "ImbalancedOptimum",
    "class_mean_gram",
    "imbalanced_optimal_value",
    "imbalanced_optimum",
    "minority_threshold",
    "mse_target_svd",
    "MINORITY_PRESETS",
    "MinorityConfig",
    "MinorityResult",
    "minority_collapse",
    "minority_geometry",
    "plot_minority_collapse",
    "Certificate",
    "DEFAULT_K",
    "DEFAULT_VARIANTS",
    "LANDSCAPE_OPTIMIZER",
    "VARIANTS",
    "LandscapeConfig",
    "LandscapeRun",
    "NegativeCurvature",
    "Optimum",
    "TRACE_METRICS",
    "UFMBlockArrow",
    "UFMParams",
    "UFMSpec",
    "add_landscape_parser",
    "ce_optimal_rho",
    "certificate",
    "find_critical_points",
    "find_minima",
    "fit_grad",
    "fit_term",
    "labels",
    "landscape_points",
    "landscape_tables",
    "load_landscape",
    "logits",
    "mse_bias_threshold",
    "negative_curvature_direction",
    "one_hot_targets",
    "optimal_value",
    "optimum",
    "orthogonal_frame",
    "pad_params",
    "planted_saddle",
    "planted_saddles",
    "plot_optimal_value_vs_s",
    "rank_of",
    "rank_restricted_points",
    "restrict_to_subspace",
    "run_landscape",
    "saddle_dims",
    "simplex_etf",
    "summarize_points",
    "trace_metrics",
    "ufm_block_arrow",
    "ufm_class_reduction",
    "ufm_classification_facts",
    "ufm_init",
    "ufm_invariants",
    "ufm_label",
    "ufm_loss",
    "ufm_nc_metrics",
    "ufm_num_global_params",
    "ufm_split_features",
    "ufm_validate_params",
    "verdict",
    "zero_mode_count",
    "SYSTEM",
]


def _add_cli(sub):
    """``ufm landscape`` and ``ufm minority-collapse``."""
    add_landscape_parser(sub)
    add_minority_parser(sub)


def _examples():
    """Small specs covering every loss and bias variant (the conformance test runs them)."""
    return (
        UFMSpec(K=3, n=2, d=3, loss="ce", bias="none"),
        UFMSpec(K=3, n=2, d=4, loss="ce", bias="free", lambda_W=1e-2, lambda_H=2e-3),
        UFMSpec(K=4, n=2, d=3, loss="mse", bias="regularized", lambda_b=1e-2),
        UFMSpec(K=3, n=1, d=3, loss="mse", bias="none", dtype="float32"),
    )


SYSTEM = register_system(
    System(
        name="ufm",
        spec_type=UFMSpec,
        loss=ufm_loss,
        init=ufm_init,
        examples=_examples,
        summary="single-layer unconstrained feature model (CE/MSE, bias none/free/regularized)",
        validate_params=ufm_validate_params,
        metrics=ufm_nc_metrics,
        metric_options=("rtol", "tau"),
        reference_value=ufm_reference_value,
        prepare_spec=ufm_prepare_spec,
        classification=ufm_classification_facts,
        num_global_params=ufm_num_global_params,
        split_features=ufm_split_features,
        block_arrow=ufm_block_arrow,
        class_reduction=ufm_class_reduction,
        planted=PlantedStarts(
            dims=saddle_dims, embed=restrict_to_subspace, full_dim=lambda spec: spec.d
        ),
        invariants=ufm_invariants,
        label=ufm_label,
        add_cli=_add_cli,
    )
)
