"""Self-supervised losses over a stack of views: INTL, trace loss, cosine alignment, W-MSE.

``views`` always has shape ``(V, m, d)``: ``V >= 2`` augmented views of the same ``m`` samples,
view 0 the anchor, embeddings in the batch-major layout of :mod:`ufm.systems.spectral.orientation`.

* :func:`cosine_alignment` / :func:`cosine_alignment_loss`: ``2 - 2 mean_i cos(a_i, b_i)``
  (``norm_mse_loss`` in winci-ai/INTL ``methods/base.py``; rows normalised with ``||x|| >= 1e-12``
  as ``torch.nn.functional.normalize``). On raw embeddings it is the collapsing baseline: a
  constant embedding reaches its minimum 0.
* :func:`trace_loss`: ``TL = sum_j (Var_j(Zhat) - 1)^2`` over the variables on ``side`` with the
  unbiased variance (``TL`` in winci-ai/INTL ``methods/intl.py``: on the instance side the
  variables are the ``m`` samples, each centred and varied over its ``d`` features).
* :func:`intl_loss` (Weng et al., ICLR 2024, arXiv 2305.16789, Eq. for INTL; official
  ``methods/intl.py``): with ``Zhat_v = IterNorm(z_v)``,
  ``(1/(V-1)) sum_{v>=1} [cos_align(Zhat_v, Zhat_0) + beta (TL(Zhat_v) + TL(Zhat_0))]``,
  ``beta = 0.01 (log2(m) - 3)`` on the instance side, ``0.01 (log2(d) - 3)`` on the feature side
  (``cal_trade_off`` in ``methods/base.py``; ``m`` is the global batch the whitening sees).
* :func:`wmse_loss` (Ermolov et al., ICML 2021, arXiv 2007.06346; code htdt/self-supervised
  ``methods/w_mse.py``): every view Cholesky-whitened on the feature side, then the normalised MSE
  (default) or plain MSE averaged over all pairs ``i < j``. The official code may whiten
  sub-batches of size ``w_size`` several times (``w_iter``); here the sub-batch is the batch.
* :func:`transformed_alignment_loss`: cosine alignment after any batch transform (the ST power
  sweep, exact whitening, IterNorm without the trace loss).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ufm.core import SpecError
from ufm.systems.spectral.iternorm import DEFAULT_N_ITER, iternorm
from ufm.systems.spectral.orientation import check_side, orient, validate
from ufm.systems.spectral.transforms import _cholesky_core

_NORMALIZE_EPS = 1e-12  # torch.nn.functional.normalize default


def _check_views(views) -> None:
    shape = jnp.shape(views)
    if len(shape) != 3 or shape[0] < 2 or shape[1] < 2 or shape[2] < 2:
        raise SpecError(
            f"views must have shape (V, batch, dim) with V >= 2, batch >= 2, dim >= 2 "
            f"(got views.shape={shape})"
        )


def _one_view(views):
    """Shape and dtype of one view, for validation without touching the data."""
    return jax.ShapeDtypeStruct(jnp.shape(views)[1:], jnp.result_type(views))


def _normalize_rows(x):
    # x / max(||x||, eps) as torch.nn.functional.normalize, written so that the gradient is
    # finite at zero rows (a collapsed batch): sqrt(max(|x|^2, eps^2)) == max(||x||, eps)
    sq = jnp.sum(x * x, axis=-1, keepdims=True)
    return x / jnp.sqrt(jnp.maximum(sq, _NORMALIZE_EPS**2))


def cosine_alignment(a, b):
    """``2 - 2 mean_i cos(a_i, b_i)`` for two batches ``(m, d)``: the mean squared distance of unit
    rows.

    >>> import jax.numpy as jnp
    >>> a = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    >>> float(cosine_alignment(a, jnp.array([[2.0, 0.0], [1.0, 0.0]])))  # cosines 1 and 0
    1.0
    """
    return 2.0 - 2.0 * jnp.mean(jnp.sum(_normalize_rows(a) * _normalize_rows(b), axis=-1))


@jax.jit
def _cosine_alignment_core(views):
    return jnp.mean(jax.vmap(cosine_alignment, (0, None))(views[1:], views[0]))


def cosine_alignment_loss(views):
    """Plain cosine alignment of raw views to the anchor, averaged over ``v >= 1`` (collapses)."""
    _check_views(views)
    return _cosine_alignment_core(views)


def transformed_alignment_loss(views, transform: Callable):
    """Cosine alignment of ``transform(z_v)`` to ``transform(z_0)``, averaged over ``v >= 1``.

    ``transform`` maps a batch ``(m, d)`` to ``(m, d)``, e.g.
    ``functools.partial(power_transform, p=0.25, side="feature")``.
    """
    _check_views(views)
    t = jax.vmap(transform)(views)
    return jnp.mean(jax.vmap(cosine_alignment, (0, None))(t[1:], t[0]))


@functools.partial(jax.jit, static_argnames=("side",))
def _trace_loss_core(zhat, side):
    x = orient(zhat, side)
    var = jnp.sum(x * x, axis=0) / (x.shape[0] - 1)
    return jnp.sum((var - 1.0) ** 2)


def trace_loss(zhat, *, side: str = "instance"):
    """Trace loss ``sum_j (Var_j(zhat) - 1)^2``, variables on ``side``, unbiased variance.

    >>> import jax.numpy as jnp
    >>> z = jnp.array([[0.0, 2.0], [0.0, 0.0], [0.0, 1.0]])
    >>> float(trace_loss(z, side="feature"))  # variances 0 and 1
    1.0
    """
    validate(zhat, side, 1)
    return _trace_loss_core(zhat, side)


def intl_beta(batch_size: int, dim: int, side: str = "instance") -> float:
    """Official trace-loss weight: ``0.01 (log2(batch_size) - 3)`` (instance side) or
    ``0.01 (log2(dim) - 3)`` (feature side).

    >>> intl_beta(256, 2048), intl_beta(256, 2048, "feature")
    (0.05, 0.08)
    """
    check_side(side)
    size, name = (batch_size, "batch_size") if side == "instance" else (dim, "dim")
    if not isinstance(size, int) or isinstance(size, bool) or size < 8:
        raise SpecError(
            f"intl_beta needs {name} >= 8 on the {side} side (beta = 0.01 (log2 {name} - 3) would "
            f"be negative; pass beta explicitly) (got {name}={size!r})"
        )
    return 0.01 * (math.log2(size) - 3.0)


class INTLTerms(NamedTuple):
    """Parts of the INTL loss: ``total``, ``alignment`` per view ``v >= 1`` ``(V-1,)``,
    ``trace`` per view ``(V,)`` and the weight ``beta`` used."""

    total: jax.Array
    alignment: jax.Array
    trace: jax.Array
    beta: float


@functools.partial(jax.jit, static_argnames=("side", "n_iter", "ddof"))
def _intl_core(views, beta, side, n_iter, ddof):
    zhat = jax.vmap(lambda z: iternorm(z, n_iter, side=side, ddof=ddof))(views)
    tl = jax.vmap(lambda z: _trace_loss_core(z, side))(zhat)
    align = jax.vmap(cosine_alignment, (0, None))(zhat[1:], zhat[0])
    return jnp.mean(align + beta * (tl[1:] + tl[0])), align, tl


def intl_terms(
    views,
    *,
    side: str = "instance",
    n_iter: int = DEFAULT_N_ITER,
    beta: float | None = None,
    ddof: int = 1,
) -> INTLTerms:
    """INTL loss and its parts for ``views`` ``(V, m, d)`` of raw projector outputs.

    Defaults are the official ones: ``side="instance"`` (``axis=0``), ``n_iter=4``,
    ``beta=None`` -> :func:`intl_beta`. Compiled once per shape, dtype, ``side``, ``n_iter`` and
    ``ddof`` (``beta`` is traced).
    """
    _check_views(views)
    validate(_one_view(views), side, ddof)
    _, m, d = views.shape
    if beta is None:
        beta = intl_beta(m, d, side)
    elif not isinstance(beta, (int, float)) or not beta >= 0.0:
        raise SpecError(f"beta must be None or a float >= 0 (got beta={beta!r})")
    total, align, tl = _intl_core(
        views, jnp.asarray(beta, jnp.result_type(views)), side, n_iter, ddof
    )
    return INTLTerms(total, align, tl, beta)


def intl_loss(views, *, side="instance", n_iter=DEFAULT_N_ITER, beta=None, ddof=1):
    """INTL loss (scalar); see :func:`intl_terms`.

    >>> import jax.numpy as jnp
    >>> z = jnp.sin(jnp.arange(2 * 16 * 32.0)).reshape(2, 16, 32)  # 2 views, batch 16, dim 32
    >>> bool(intl_loss(z) > 0)
    True
    """
    return intl_terms(views, side=side, n_iter=n_iter, beta=beta, ddof=ddof).total


@functools.partial(jax.jit, static_argnames=("normalize", "ddof"))
def _wmse_core(views, eps, normalize, ddof):
    w = jax.vmap(lambda z: _cholesky_core(z, eps, ddof))(views)
    v = views.shape[0]
    pairs = [(i, j) for i in range(v - 1) for j in range(i + 1, v)]
    first = jnp.array([i for i, _ in pairs])
    second = jnp.array([j for _, j in pairs])
    if normalize:
        losses = jax.vmap(cosine_alignment)(w[first], w[second])
    else:
        losses = jnp.mean((w[first] - w[second]) ** 2, axis=(1, 2))
    return jnp.mean(losses)


def wmse_loss(views, *, eps: float = 0.0, normalize: bool = True, ddof: int = 1):
    """W-MSE: mean over pairs ``i < j`` of the (normalised) MSE between Cholesky-whitened views.

    ``normalize=True`` (official default) uses :func:`cosine_alignment`; ``False`` the plain
    elementwise MSE (``torch.nn.functional.mse_loss``). ``eps`` shrinks the covariance towards
    the identity before the Cholesky factorisation (official default 0).
    """
    _check_views(views)
    if not isinstance(eps, (int, float)) or not 0.0 <= eps < 1.0:
        raise SpecError(f"eps must be a float in [0, 1) (got eps={eps!r})")
    validate(_one_view(views), "feature", ddof)
    return _wmse_core(views, jnp.asarray(eps, jnp.result_type(views)), bool(normalize), ddof)
