"""Neural-collapse metrics on arrays (no spec types): frames, class statistics, NC1-NC4.

Conventions and formulas: docs/metrics.md."""

from .class_stats import between_class_cov as between_class_cov
from .class_stats import class_means as class_means
from .class_stats import within_class_cov as within_class_cov
from .collapse import NC_METRIC_NAMES as NC_METRIC_NAMES
from .collapse import nc1_cdnv as nc1_cdnv
from .collapse import nc1_pinv as nc1_pinv
from .collapse import nc1_quotient as nc1_quotient
from .collapse import nc1_svd as nc1_svd
from .collapse import nc2_etf_means as nc2_etf_means
from .collapse import nc2_etf_weights as nc2_etf_weights
from .collapse import nc2_orthogonal_frame_means as nc2_orthogonal_frame_means
from .collapse import nc2_orthogonal_frame_weights as nc2_orthogonal_frame_weights
from .collapse import nc3_papyan as nc3_papyan
from .collapse import nc3_zhu as nc3_zhu
from .collapse import nc4_bias_relation as nc4_bias_relation
from .collapse import nc4_ncc_agreement as nc4_ncc_agreement
from .collapse import nc_metrics_class_major as nc_metrics_class_major
from .frames import cosines as cosines
from .frames import equiangularity as equiangularity
from .frames import equinorm as equinorm
from .frames import etf_error as etf_error
from .frames import fro_normalize as fro_normalize
from .frames import max_angle_deviation as max_angle_deviation
from .frames import numerical_rank as numerical_rank
from .frames import orthogonal_frame_error as orthogonal_frame_error
from .frames import safe_div as safe_div
from .generalized import GNC2_KERNELS as GNC2_KERNELS
from .generalized import gnc2_hyperspherical as gnc2_hyperspherical
from .generalized import nc5_ood_orthogonality as nc5_ood_orthogonality
from .generalized import unc3_uniform_duality as unc3_uniform_duality
