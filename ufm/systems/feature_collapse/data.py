"""The data model of Laurent, von Brecht, Bresson (2023), "Feature collapse", arXiv 2305.16162.

Sentences of ``L`` words; word ``(alpha, beta)`` = word ``beta`` of concept ``alpha`` with token
id ``alpha * s_c + beta``. Latent variable ``z_k in [n_c]^L`` (label ``k``) fixes the concept of
every position; the word within the concept is drawn i.i.d. from the law ``mu`` over ``beta``.

Randomness: one ``numpy.random.Generator(PCG64(data_seed))`` stream, used in this order: the
latents ``Z`` (``integers(0, n_c, (K, L))``; skipped for ``latents="all"``), the training
``beta`` (``choice(s_c, (K*nspl, L), p=mu)``), then the test ``beta`` (same with ``n_test``).
The same ``data_seed`` gives the same data set on every platform and for every training seed.
Sentences are grouped by latent: rows ``k*nspl .. (k+1)*nspl - 1`` of the training set come from
``z_k`` (as in the paper's ``repeat_interleave``).
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np

from .spec import FeatureCollapseSpec

__all__ = ["FCData", "make_data", "word_law"]


class FCData(NamedTuple):
    """A sampled data set (numpy arrays).

    Attributes:
        Z: ``(K, L)`` int32 latent variables (concept of each position of each class).
        mu: ``(s_c,)`` float64 word law over ``beta``.
        train_x, train_y: ``(K*nspl, L)`` int32 token ids and ``(K*nspl,)`` int32 labels.
        test_x, test_y: ``(K*n_test, L)`` and ``(K*n_test,)``, fresh sentences of the same latents.
        word_concept, word_beta: ``(n_w,)`` concept ``alpha`` and index ``beta`` of each token id.
        word_mu: ``(n_w,)`` law value ``mu_beta`` of each token id.
        train_counts: ``(n_w,)`` occurrences of each token id in the training set (a word is
            "seen" when its count is positive; norm statistics are taken over seen words).
    """

    Z: np.ndarray
    mu: np.ndarray
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    word_concept: np.ndarray
    word_beta: np.ndarray
    word_mu: np.ndarray
    train_counts: np.ndarray

    @property
    def seen(self) -> np.ndarray:
        """``(n_w,)`` bool: words that occur at least once in the training set."""
        return self.train_counts > 0


def word_law(law: str, s_c: int) -> np.ndarray:
    """The word law ``mu`` over ``beta = 0..s_c-1``: uniform, or Zipf ``mu ∝ 1/(beta+1)``.

    >>> word_law("zipf", 3).round(4).tolist()
    [0.5455, 0.2727, 0.1818]
    """
    if law == "uniform":
        return np.full(s_c, 1.0 / s_c)
    if law == "zipf":
        mu = 1.0 / np.arange(1, s_c + 1)
        return mu / mu.sum()
    raise ValueError(f"law must be uniform or zipf; got {law!r}")


def _all_latents(n_c: int, L: int) -> np.ndarray:
    return np.array(list(itertools.product(range(n_c), repeat=L)), dtype=np.int32).reshape(-1, L)


def make_data(spec: FeatureCollapseSpec) -> FCData:
    """Sample the training and test sets of ``spec`` (reproducible from ``spec.data_seed``).

    >>> from ufm.systems.feature_collapse import FeatureCollapseSpec
    >>> data = make_data(FeatureCollapseSpec(n_w=120, L=8, K=64, d=32))
    >>> data.train_x.shape, data.test_x.shape, int(data.train_x.max()) < 120
    ((320, 8), (320, 8), True)
    """
    rng = np.random.Generator(np.random.PCG64(spec.data_seed))
    s_c = spec.s_c
    mu = word_law(spec.law, s_c)
    if spec.latents == "all":
        Z = _all_latents(spec.n_c, spec.L)
    else:
        Z = rng.integers(0, spec.n_c, size=(spec.K, spec.L)).astype(np.int32)

    def sentences(per_latent):
        beta = rng.choice(s_c, size=(spec.K * per_latent, spec.L), p=mu).astype(np.int32)
        alpha = np.repeat(Z, per_latent, axis=0)
        labels = np.repeat(np.arange(spec.K, dtype=np.int32), per_latent)
        return (alpha * s_c + beta).astype(np.int32), labels

    train_x, train_y = sentences(spec.nspl)
    test_x, test_y = sentences(spec.n_test)
    tokens = np.arange(spec.n_w)
    word_beta = (tokens % s_c).astype(np.int32)
    return FCData(
        Z=Z,
        mu=mu,
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        word_concept=(tokens // s_c).astype(np.int32),
        word_beta=word_beta,
        word_mu=mu[word_beta],
        train_counts=np.bincount(train_x.ravel(), minlength=spec.n_w),
    )
