"""Native CPU kernels (C++ through XLA's FFI), compiled on first use (:mod:`.build`).

* :func:`ufm_chunk`: a chunk of :func:`ufm.optimize` on the UFM, every step of every seed in one
  call (:mod:`.chunk`); :func:`ufm.optimize` takes it by default where it applies.
* :func:`ufm_schur_sums`, :func:`ufm_cinv_apply`: the sample sums of the UFM block-arrow Schur
  complement ``S(sigma)`` and the per-sample solves with ``D_i - sigma I``, float64
  (:mod:`.schur`); the UFM's block-arrow structure takes them by default on CPU.
* :func:`available` / :func:`unavailable_reason`: whether the library compiled here (switch it
  off with ``UFM_NATIVE_KERNELS=off``).
"""

from .build import available as available
from .build import native_cache_dir as native_cache_dir
from .build import unavailable_reason as unavailable_reason
from .chunk import MAX_SIZE as MAX_SIZE
from .chunk import supports as supports
from .chunk import ufm_chunk as ufm_chunk
from .schur import SCHUR_MAX_SIZE as SCHUR_MAX_SIZE
from .schur import schur_supports as schur_supports
from .schur import ufm_cinv_apply as ufm_cinv_apply
from .schur import ufm_schur_sums as ufm_schur_sums
