"""Native CPU kernels (C++ through XLA's FFI), compiled on first use (:mod:`.build`).

* :func:`ufm_chunk`: a chunk of :func:`ufm.optimize` on the UFM, every step of every seed in one
  call (:mod:`.chunk`); :func:`ufm.optimize` takes it by default where it applies.
* :func:`available` / :func:`unavailable_reason`: whether the library compiled here (switch it
  off with ``UFM_NATIVE_KERNELS=off``).
"""

from .build import available as available
from .build import native_cache_dir as native_cache_dir
from .build import unavailable_reason as unavailable_reason
from .chunk import MAX_SIZE as MAX_SIZE
from .chunk import supports as supports
from .chunk import ufm_chunk as ufm_chunk
