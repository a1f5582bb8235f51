"""Fast paths, one layer that the rest calls; each with a plain-jnp reference and a test that the
two agree (``tests/kernels``).

* :func:`small_matmul`: products of tiny matrices as fused multiply-adds (:mod:`.contract`).
* :func:`eigvalsh`: eigenvalues of symmetric matrices without the vectors (LAPACK ``syevd`` job
  ``N`` on CPU; :mod:`.eigvals`), for Hessian inertia and ``lambda_min``.
* :func:`singular_values`: singular values of tall or wide matrices through their triangular
  factor (:mod:`.svdvals`; jax's CPU ``svd`` allocates a ``max(m, n)^2`` workspace).
* :func:`chunk_kernel`: a whole chunk of the many-seed optimiser in one native call where a system
  registers one (the UFM: :func:`ufm.kernels.native.ufm_chunk`, C++ through XLA's FFI, compiled
  on first use; :mod:`.native`).
* :func:`ufm_value_and_grad`: the UFM objective and its closed-form gradient in one pass
  (:mod:`.ufm_objective`), used by :func:`ufm.optimize` through :func:`value_and_grad`
  (:mod:`.registry`).

"""

from .contract import UNROLL_MAX as UNROLL_MAX
from .contract import small_matmul as small_matmul
from .contract import small_matmul_reference as small_matmul_reference
from .eigvals import eigvalsh as eigvalsh
from .eigvals import eigvalsh_reference as eigvalsh_reference
from .registry import chunk_kernel as chunk_kernel
from .registry import has_fast_value_and_grad as has_fast_value_and_grad
from .registry import register_chunk as register_chunk
from .registry import register_value_and_grad as register_value_and_grad
from .registry import value_and_grad as value_and_grad
from .small_spd import spd_inverse_batched_last as spd_inverse_batched_last
from .small_spd import (
    spd_inverse_batched_last_reference as spd_inverse_batched_last_reference,
)
from .svdvals import singular_values as singular_values
from .ufm_objective import ufm_value_and_grad as ufm_value_and_grad
from .ufm_objective import ufm_value_and_grad_reference as ufm_value_and_grad_reference
