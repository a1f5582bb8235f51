"""Dimensional-collapse measures of a batch of embeddings ``z`` (``m x d``, samples in rows).

* :func:`covariance_eigenvalues` / :func:`normalized_spectrum`: eigenvalues of the ``d x d``
  feature covariance (centred over the batch, normaliser ``m - ddof``), descending; the
  trace-normalised version sums to 1 and is scale-free.
* :func:`effective_rank`: ``exp(H(lambda / sum lambda))`` on the covariance eigenvalues, with
  ``H(p) = -sum p log p`` (``0 log 0 = 0``). The entropy effective rank is Roy & Vetterli, "The
  effective rank: a measure of effective dimensionality", EUSIPCO 2007; they define it on the
  *singular values* of a matrix, and applied to covariance eigenvalues (= squared singular values
  of the centred batch, over ``m - ddof``) it is the "covariance effective rank" common in the
  dimensional-collapse literature.
* :func:`rankme`: RankMe (Garrido, Balestriero, Najman, LeCun, "RankMe: Assessing the downstream
  performance of pretrained self-supervised representations by their rank", ICML 2023,
  arXiv 2210.02885), exactly as defined there: on the **singular values** ``sigma_k`` of the
  embedding matrix itself (no centring), ``p_k = sigma_k / ||sigma||_1 + eps``, ``eps = 1e-7``,
  ``RankMe = exp(-sum p_k log p_k)``.

  Relation: with ``center=True`` and ``eps=0``, RankMe is the Roy-Vetterli rank of the centred
  batch, i.e. the entropy rank of ``sqrt(lambda)``, whereas :func:`effective_rank` is the entropy
  rank of ``lambda``. Since the entropy of ``lambda^a / sum lambda^a`` does not increase with
  ``a``, ``effective_rank(z) <= rankme(z, eps=0, center=True)``, with equality exactly when the
  nonzero spectrum is flat; both equal ``r`` for an isotropic rank-``r`` batch. The uncentred
  RankMe also counts the mean embedding as a direction.
* :func:`count_above`: number of covariance eigenvalues above ``rel * lambda_max``
  (``rel = 1e-3`` by default): a thresholded numerical rank.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ufm.core import SpecError
from ufm.systems.spectral.orientation import check_batch, covariance, validate

#: RankMe's epsilon (Garrido et al. 2023).
RANKME_EPS = 1e-7


@functools.partial(jax.jit, static_argnames=("ddof",))
def _covariance_eigenvalues(z, ddof):
    lam = jnp.linalg.eigvalsh(covariance(z, "feature", ddof))
    return jnp.maximum(lam[::-1], 0.0)


def covariance_eigenvalues(z, *, ddof: int = 1):
    """Eigenvalues of the ``d x d`` feature covariance of ``z``, descending, clipped at 0.

    NumPy: ``numpy.sort(numpy.linalg.eigvalsh(numpy.cov(z, rowvar=False, ddof=ddof)))[::-1]``.
    """
    validate(z, "feature", ddof)
    return _covariance_eigenvalues(z, ddof)


def _normalize(lam):
    return lam / jnp.maximum(jnp.sum(lam), jnp.finfo(lam.dtype).tiny)


def normalized_spectrum(z, *, ddof: int = 1):
    """Trace-normalised covariance spectrum ``lambda / sum(lambda)``, descending (sums to 1).

    >>> import jax.numpy as jnp
    >>> z = jnp.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 0.0]])
    >>> normalized_spectrum(z).tolist()
    [1.0, 0.0]
    """
    return _normalize(covariance_eigenvalues(z, ddof=ddof))


def entropy_effective_rank(weights, eps: float = 0.0):
    """``exp(-sum p log p)`` with ``p = w / sum(w) + eps`` for nonnegative ``weights`` (``0 log 0 =
    0``).

    ``eps = 0`` is Roy & Vetterli's effective rank of the weights; RankMe uses ``eps = 1e-7``.

    >>> import jax.numpy as jnp
    >>> round(float(entropy_effective_rank(jnp.array([2.0, 2.0, 2.0, 0.0]))), 6)
    3.0
    """
    w = jnp.asarray(weights)
    p = _normalize(w) + eps
    plogp = jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0)
    return jnp.exp(-jnp.sum(plogp))


def effective_rank(z, *, ddof: int = 1):
    """Covariance effective rank ``exp(H(lambda / sum lambda))`` of a batch ``z`` (``m x d``)."""
    return entropy_effective_rank(covariance_eigenvalues(z, ddof=ddof))


@functools.partial(jax.jit, static_argnames=("center",))
def _rankme(z, eps, center):
    if center:
        z = z - jnp.mean(z, axis=0, keepdims=True)
    return entropy_effective_rank(jnp.linalg.svd(z, compute_uv=False), eps)


def rankme(z, *, eps: float = RANKME_EPS, center: bool = False):
    """RankMe of ``z`` (``m x d``): entropy rank of its singular values (Garrido et al. 2023).

    ``center=False`` (default) is the definition of the paper; ``center=True`` removes the batch
    mean first.

    >>> import jax.numpy as jnp
    >>> round(float(rankme(jnp.eye(4)[:, :3] * 5.0)), 4)
    3.0
    """
    check_batch(z)
    if not isinstance(eps, (int, float)) or not 0.0 <= eps < 1.0:
        raise SpecError(f"eps must be a float in [0, 1) (got eps={eps!r})")
    return _rankme(z, jnp.asarray(eps, jnp.result_type(z)), bool(center))


def _check_rel(rel: float) -> None:
    if not isinstance(rel, (int, float)) or not 0.0 < rel < 1.0:
        raise SpecError(f"rel must be a float in (0, 1) (got rel={rel!r})")


def count_above(z, *, rel: float = 1e-3, ddof: int = 1):
    """Number of covariance eigenvalues strictly above ``rel * lambda_max``."""
    _check_rel(rel)
    lam = covariance_eigenvalues(z, ddof=ddof)
    return jnp.sum(lam > rel * lam[0])


class CollapseMeasures(NamedTuple):
    """All measures of one batch: ``spectrum`` (trace-normalised, descending), ``erank``
    (covariance effective rank), ``rankme`` (on singular values, uncentred), ``count``
    (eigenvalues above ``rel * lambda_max``)."""

    spectrum: jax.Array
    erank: jax.Array
    rankme: jax.Array
    count: jax.Array


@functools.partial(jax.jit, static_argnames=("ddof",))
def _collapse_measures(z, rel, ddof):
    spectrum = _normalize(_covariance_eigenvalues(z, ddof))
    return CollapseMeasures(
        spectrum=spectrum,
        erank=entropy_effective_rank(spectrum),
        rankme=_rankme(z, jnp.asarray(RANKME_EPS, z.dtype), False),
        count=jnp.sum(spectrum > rel * spectrum[0]),
    )


def collapse_measures(z, *, rel: float = 1e-3, ddof: int = 1) -> CollapseMeasures:
    """Compute :class:`CollapseMeasures` for ``z`` (``m x d``); jit- and vmap-friendly."""
    _check_rel(rel)
    validate(z, "feature", ddof)
    return _collapse_measures(z, jnp.asarray(rel, jnp.result_type(z)), ddof)
