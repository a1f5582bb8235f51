"""ufm: the unconstrained feature model and representation collapse in JAX.

The public API is flat: ``import ufm; ufm.UFMSpec(...)``. Private modules (``ufm._*``) are not
part of the API. See README.md for a tour.
"""

import os as _os

# jaxlib's CPU LAPACK kernels (eigh, svd, cholesky) run through OpenBLAS; its thread pool makes the
# small batched decompositions of this toolkit 10-100x slower on few cores (a 100 x 100 eigh took
# 0.16 s instead of 1 ms on a busy 2-core machine). Must be set before OpenBLAS loads; an explicit
# user setting wins.
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from ._version import __version__ as __version__

# -- problem specs and objectives ------------------------------------------------------------
from ._spec import SpecError as SpecError
from ._spec import UFMSpec as UFMSpec
from ._objective import UFMParams as UFMParams
from ._objective import fit_grad as fit_grad
from ._objective import fit_term as fit_term
from ._objective import grad_norm as grad_norm
from ._objective import init_batch as init_batch
from ._objective import init_params as init_params
from ._objective import labels as labels
from ._objective import logits as logits
from ._objective import loss as loss
from ._objective import objective as objective
from ._objective import one_hot_targets as one_hot_targets

# -- theory oracles --------------------------------------------------------------------------
from ._theory import Optimum as Optimum
from ._theory import ce_optimal_rho as ce_optimal_rho
from ._theory import mse_bias_threshold as mse_bias_threshold
from ._theory import optimal_value as optimal_value
from ._theory import optimum as optimum
from ._theory import orthogonal_frame as orthogonal_frame
from ._theory import simplex_etf as simplex_etf
from ._saddles import Certificate as Certificate
from ._saddles import NegativeCurvature as NegativeCurvature
from ._saddles import certificate as certificate
from ._saddles import negative_curvature_direction as negative_curvature_direction
from ._saddles import pad_params as pad_params
from ._saddles import planted_saddle as planted_saddle
from ._saddles import rank_of as rank_of
from ._saddles import saddle_dims as saddle_dims
from ._saddles import zero_mode_count as zero_mode_count

# -- optimisation ----------------------------------------------------------------------------
from ._optimize import OptimizeResult as OptimizeResult
from ._optimize import Status as Status
from ._optimize import gd as gd
from ._optimize import make_optimizer as make_optimizer
from ._optimize import momentum as momentum
from ._optimize import optimize as optimize
from ._optimize import tree_norm as tree_norm
from ._polish import PolishResult as PolishResult
from ._polish import polish as polish

# -- neural-collapse metrics -----------------------------------------------------------------
from ._frames import cosines as cosines
from ._frames import equiangularity as equiangularity
from ._frames import equinorm as equinorm
from ._frames import etf_error as etf_error
from ._frames import max_angle_deviation as max_angle_deviation
from ._frames import numerical_rank as numerical_rank
from ._frames import orthogonal_frame_error as orthogonal_frame_error
from ._class_stats import between_class_cov as between_class_cov
from ._class_stats import class_means as class_means
from ._class_stats import within_class_cov as within_class_cov
from ._metrics import NC_METRIC_NAMES as NC_METRIC_NAMES
from ._metrics import nc1_cdnv as nc1_cdnv
from ._metrics import nc1_pinv as nc1_pinv
from ._metrics import nc1_quotient as nc1_quotient
from ._metrics import nc1_svd as nc1_svd
from ._metrics import nc2_etf_means as nc2_etf_means
from ._metrics import nc2_etf_weights as nc2_etf_weights
from ._metrics import nc2_orthogonal_frame_means as nc2_orthogonal_frame_means
from ._metrics import nc2_orthogonal_frame_weights as nc2_orthogonal_frame_weights
from ._metrics import nc3_papyan as nc3_papyan
from ._metrics import nc3_zhu as nc3_zhu
from ._metrics import nc4_bias_relation as nc4_bias_relation
from ._metrics import nc4_ncc_agreement as nc4_ncc_agreement
from ._metrics import nc_metrics as nc_metrics

# -- Hessians, critical points, classification -----------------------------------------------
from ._hessian import LanczosResult as LanczosResult
from ._hessian import hessian_dense as hessian_dense
from ._hessian import hessian_spectrum_dense as hessian_spectrum_dense
from ._hessian import lanczos_extremes as lanczos_extremes
from ._blockarrow import BlockArrow as BlockArrow
from ._blockarrow import FeatureSplit as FeatureSplit
from ._blockarrow import block_arrow as block_arrow
from ._blockarrow import block_arrow_matvec as block_arrow_matvec
from ._blockarrow import split_features as split_features
from ._blockarrow_ufm import UFMBlockArrow as UFMBlockArrow
from ._inertia import BlockArrowResult as BlockArrowResult
from ._inertia import block_arrow_inertia as block_arrow_inertia
from ._inertia import block_arrow_spectrum as block_arrow_spectrum
from ._newton import newton_step as newton_step
from ._classify import CLASS_NAMES as CLASS_NAMES
from ._classify import CounterexampleWarning as CounterexampleWarning
from ._classify import CriticalPointRecord as CriticalPointRecord
from ._classify import PointClass as PointClass
from ._classify import classify as classify
from ._classify import classify_batch as classify_batch
from ._classify_deep import deep_zero_mode_count as deep_zero_mode_count
from ._critical import CriticalPoints as CriticalPoints
from ._critical import GradNormSpec as GradNormSpec
from ._critical import concat_points as concat_points
from ._critical import find_critical_points as find_critical_points
from ._critical import find_minima as find_minima
from ._critical import planted_saddles as planted_saddles
from ._critical import rank_restricted_points as rank_restricted_points
from ._dedup import Deduplicated as Deduplicated
from ._dedup import deduplicate as deduplicate
from ._landscape_points import landscape_points as landscape_points
from ._landscape_points import summarize_points as summarize_points

# -- deep UFM --------------------------------------------------------------------------------
from ._deep import ACTIVATIONS as ACTIVATIONS
from ._deep import DeepFeatures as DeepFeatures
from ._deep import DeepUFMParams as DeepUFMParams
from ._deep import DeepUFMSpec as DeepUFMSpec
from ._deep import activation_fn as activation_fn
from ._deep import deep_class_means as deep_class_means
from ._deep import deep_features as deep_features
from ._deep import deep_loss_terms as deep_loss_terms
from ._deep_theory import SRGSolution as SRGSolution
from ._deep_theory import dnc_constant as dnc_constant
from ._deep_theory import dnc_loss as dnc_loss
from ._deep_theory import dnc_point as dnc_point
from ._deep_theory import edge_incidence as edge_incidence
from ._deep_theory import power_objective_min as power_objective_min
from ._deep_theory import srg_construction as srg_construction
from ._deep_theory import srg_loss as srg_loss
from ._deep_theory import srg_ratio as srg_ratio
from ._deep_metrics import deep_metric_names as deep_metric_names
from ._deep_metrics import deep_metrics as deep_metrics

# -- sweeps and result store -----------------------------------------------------------------
from ._pipeline import OptimizerSettings as OptimizerSettings
from ._pipeline import PointsResult as PointsResult
from ._pipeline import StartSettings as StartSettings
from ._pipeline import make_starts as make_starts
from ._pipeline import run_points as run_points
from ._pipeline import start_keys as start_keys
from ._progress import Progress as Progress
from ._sweep_spec import InvalidPoint as InvalidPoint
from ._sweep_spec import SweepConfig as SweepConfig
from ._sweep_spec import SweepSpec as SweepSpec
from ._sweep_spec import config_hash as config_hash
from ._sweep_spec import load_sweep_spec as load_sweep_spec
from ._sweep_spec import register_analysis as register_analysis
from ._sweep_spec import register_model as register_model
from ._sharding import initialize_distributed as initialize_distributed
from ._sharding import seed_mesh as seed_mesh
from ._store import StoreError as StoreError
from ._store import load_results as load_results
from ._store import load_results_arrow as load_results_arrow
from ._sweep import SweepSummary as SweepSummary
from ._sweep import run_chunk as run_chunk
from ._sweep import run_sweep as run_sweep
from ._sweep_report import sweep_report as sweep_report
from ._sweep_report import sweep_status as sweep_status

# -- landscape job, plots --------------------------------------------------------------------
from ._landscape import LandscapeConfig as LandscapeConfig
from ._landscape import analyse_points as analyse_points
from ._landscape import config_label as config_label
from ._landscape import format_class_table as format_class_table
from ._landscape import format_landscape_table as format_landscape_table
from ._landscape import run_config as run_config
from ._landscape import run_landscape as run_landscape
from ._landscape import starting_points as starting_points
from ._landscape import summarize_classes as summarize_classes
from ._landscape import summarize_landscape as summarize_landscape
from ._landscape import verdict as verdict
from ._plots import plot_gap_distribution as plot_gap_distribution
from ._plots import plot_lambda_min_vs_gap as plot_lambda_min_vs_gap
from ._plots import plot_nc_traces as plot_nc_traces
from ._plots import plot_negative_counts as plot_negative_counts
from ._plots import plot_optimal_value_vs_s as plot_optimal_value_vs_s
from ._plots import plot_saddle_bound as plot_saddle_bound
from ._report import load_traces as load_traces
