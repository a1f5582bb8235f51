"""Hessian spectra of any registered objective: dense oracle and Lanczos on Hessian-vector products.

Both routines are generic over the spec type: they only need ``ufm.loss(spec, params)`` and flatten
the parameter pytree with :func:`jax.flatten_util.ravel_pytree` (the order of the flat vector is the
pytree order, e.g. ``W`` row-major, then ``H`` row-major, then ``b`` for :class:`ufm.UFMParams`).

* :func:`hessian_dense` / :func:`hessian_spectrum_dense`: the full Hessian by forward-over-reverse
  autodiff and a float64 ``eigh``. The test oracle; cost ``O(p)`` gradients and ``O(p^3)`` for the
  eigendecomposition, so up to a few thousand parameters.
* :func:`lanczos_extremes`: both ends of the spectrum from one Lanczos run on Hessian-vector
  products (``jax.jvp`` of ``jax.grad``), fixed Krylov depth, full reorthogonalisation. Memory
  ``num_matvecs * p``; for very large problems with per-sample structure use
  :func:`ufm.hessian.block_arrow_spectrum`, which is exact.
"""

from __future__ import annotations

import jax
from jax.flatten_util import ravel_pytree

from ..core.jitting import jit_when_eager
from ..core.model import loss
from ..kernels import eigvalsh

__all__ = ["hessian_dense", "hessian_spectrum_dense", "flat_objective"]


def flat_objective(spec, params):
    flat, unravel = ravel_pytree(params)
    return (lambda x: loss(spec, unravel(x))), flat, unravel


def hessian_dense(spec, params):
    """The full Hessian of ``ufm.loss(spec, .)`` at ``params``, as a matrix of the flat parameters.

    Returns ``(H, unravel)``: ``H`` of shape ``(p, p)`` (symmetrised, forward-over-reverse
    autodiff, ``jax.hessian``) and the function mapping a flat vector back to a params pytree. The
    NumPy/SciPy equivalent is a finite-difference Hessian of the flattened objective. To vmap over
    seeds, vmap ``lambda p: hessian_dense(spec, p)[0]``.

    Example:
        >>> import jax, ufm
        >>> spec = ufm.UFMSpec(K=3, n=2, d=3, loss="mse")
        >>> p = ufm.init_params(spec, jax.random.key(0))
        >>> H = jax.jit(lambda p: ufm.hessian.hessian_dense(spec, p)[0])(p)
        >>> H.shape, bool((H == H.T).all())
        ((27, 27), True)
    """
    return _hessian_matrix(spec, params), ravel_pytree(params)[1]


@jit_when_eager
def _hessian_matrix(spec, params):
    f, flat, _ = flat_objective(spec, params)
    H = jax.hessian(f)(flat)
    return 0.5 * (H + H.T)


@jit_when_eager
def hessian_spectrum_dense(spec, params) -> jax.Array:
    """All Hessian eigenvalues, ascending (``eigvalsh`` of :func:`hessian_dense`; vmappable).

    Use float64 (``spec.dtype="float64"`` and ``jax_enable_x64``) whenever signs of small
    eigenvalues matter. The eigenvalues come without eigenvectors (:func:`ufm.kernels.eigvalsh`).
    SciPy equivalent: ``scipy.linalg.eigvalsh(H)``.

    Example:
        >>> import jax, ufm
        >>> spec = ufm.UFMSpec(K=3, n=2, d=3, loss="ce", lambda_W=0.1, lambda_H=0.2)
        >>> p0 = ufm.UFMParams(jax.numpy.zeros((3, 3)), jax.numpy.zeros((3, 6)))
        >>> ev = jax.jit(ufm.hessian.hessian_spectrum_dense)(spec, p0)
        >>> s1 = float(jax.numpy.linalg.norm(ufm.systems.ufm.fit_grad(p0.W @ p0.H, "ce", 2), ord=2))
        >>> lam = 0.15 - (0.05**2 + s1**2) ** 0.5  # origin: (lW+lH)/2 - sqrt(((lH-lW)/2)^2 + s1^2)
        >>> round(float(ev[0]), 6), round(lam, 6)
        (-0.090947, -0.090947)
    """
    return eigvalsh(_hessian_matrix(spec, params))
