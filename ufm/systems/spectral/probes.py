"""Frozen-feature evaluators for self-supervised embeddings: kNN and a closed-form linear probe.

* :func:`knn_accuracy`: k-nearest-neighbour classification with the weighted-vote protocol of
  Wu, Xiong, Yu, Lin, "Unsupervised Feature Learning via Non-Parametric Instance
  Discrimination", CVPR 2018 (arXiv 1805.01978): cosine similarity, votes weighted by
  ``exp(sim / temperature)``, ``temperature = 0.07``. Wu et al. use ``k = 200``; DINO (Caron et
  al. 2021, arXiv 2104.14294) reports ``k = 20`` as best, which is our default. ``temperature=None``
  gives a plain majority vote
  (ties go to the smallest label); the official INTL CIFAR evaluation (winci-ai/INTL
  ``cifar/eval/evaluate.py``) uses ``metric="euclidean"``, ``k=5``, majority vote.
* :func:`ridge_probe_accuracy`: linear probe by ridge regression on one-hot targets,
  ``W = (X^T X + ridge * n * I)^{-1} X^T Y`` on features standardised with the training
  statistics, with an unpenalised bias (both sides centred); prediction ``argmax(x W + b)``.
  Closed form and deterministic, a fast stand-in for the SGD/Adam-trained linear classifier of
  the papers (which optimise cross-entropy; accuracies are comparable but not identical).

Both are host-level functions (the number of classes is read from the labels) built on jax.numpy;
the test set is processed in chunks of ``chunk`` rows to bound memory.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ufm.core import SpecError


def _check_xy(x, y, name: str):
    x = jnp.asarray(x)
    y = np.asarray(y)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise SpecError(f"{name}_x must be (n, d) and {name}_y (n,) (got {x.shape} and {y.shape})")
    if not np.issubdtype(y.dtype, np.integer) or (y.size and y.min() < 0):
        raise SpecError(f"{name}_y must be nonnegative integer labels (got dtype {y.dtype})")
    return x, y


def _check_pair(train_x, train_y, test_x, test_y):
    train_x, train_y = _check_xy(train_x, train_y, "train")
    test_x, test_y = _check_xy(test_x, test_y, "test")
    if train_x.shape[1] != test_x.shape[1]:
        raise SpecError(
            f"train_x and test_x need the same dim (got {train_x.shape[1]} and {test_x.shape[1]})"
        )
    n_classes = int(max(train_y.max(), test_y.max())) + 1
    return train_x, jnp.asarray(train_y), test_x, jnp.asarray(test_y), n_classes


def _normalize_rows(x):
    return x / jnp.maximum(jnp.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@functools.partial(jax.jit, static_argnames=("n_classes", "k", "metric", "temperature"))
def _knn_chunk(train_x, train_y, q, n_classes, k, metric, temperature):
    if metric == "cosine":
        score = _normalize_rows(q) @ _normalize_rows(train_x).T  # larger is nearer
    else:
        sq = jnp.sum(train_x * train_x, axis=1)
        score = -(jnp.sum(q * q, axis=1)[:, None] - 2.0 * q @ train_x.T + sq[None, :])
    top, idx = jax.lax.top_k(score, k)
    weight = jnp.ones_like(top) if temperature is None else jnp.exp(top / temperature)
    votes = jnp.zeros((q.shape[0], n_classes), top.dtype)
    votes = votes.at[jnp.arange(q.shape[0])[:, None], train_y[idx]].add(weight)
    return jnp.argmax(votes, axis=1)


def knn_predict(
    train_x, train_y, test_x, *, n_classes, k=20, metric="cosine", temperature=0.07, chunk=1024
):
    """kNN class predictions for ``test_x`` (see the module docstring for the conventions)."""
    if metric not in ("cosine", "euclidean"):
        raise SpecError(f"metric must be 'cosine' or 'euclidean' (got metric={metric!r})")
    n_train = train_x.shape[0]
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= n_train:
        raise SpecError(f"k must be an int in [1, n_train] (got k={k!r}, n_train={n_train})")
    if temperature is not None and not (isinstance(temperature, (int, float)) and temperature > 0):
        raise SpecError(f"temperature must be None or a float > 0 (got {temperature!r})")
    temperature = None if temperature is None else float(temperature)
    parts = [
        _knn_chunk(train_x, train_y, test_x[i : i + chunk], n_classes, k, metric, temperature)
        for i in range(0, test_x.shape[0], chunk)
    ]
    return jnp.concatenate(parts)


def knn_accuracy(
    train_x,
    train_y,
    test_x,
    test_y,
    *,
    k=20,
    metric="cosine",
    temperature=0.07,
    chunk=1024,
) -> float:
    """Fraction of ``test_x`` whose kNN prediction (from ``train_x``, ``train_y``) is ``test_y``.

    >>> import numpy as np
    >>> x = np.array([[1.0, 0.1], [1.0, -0.1], [-1.0, 0.1], [-1.0, -0.1]])
    >>> knn_accuracy(x, np.array([0, 0, 1, 1]), -x, np.array([1, 1, 0, 0]), k=2)
    1.0
    """
    train_x, train_y, test_x, test_y, n_classes = _check_pair(train_x, train_y, test_x, test_y)
    pred = knn_predict(
        train_x,
        train_y,
        test_x,
        n_classes=n_classes,
        k=k,
        metric=metric,
        temperature=temperature,
        chunk=chunk,
    )
    return float(jnp.mean(pred == test_y))


@functools.partial(jax.jit, static_argnames=("n_classes",))
def _ridge_fit(train_x, train_y, ridge, n_classes):
    n, d = train_x.shape
    mean = jnp.mean(train_x, axis=0)
    std = jnp.std(train_x, axis=0)
    std = jnp.where(std > 0, std, jnp.ones_like(std))
    xs = (train_x - mean) / std
    y = jax.nn.one_hot(train_y, n_classes, dtype=xs.dtype)
    y_mean = jnp.mean(y, axis=0)
    gram = xs.T @ xs + ridge * n * jnp.eye(d, dtype=xs.dtype)
    w = jnp.linalg.solve(gram, xs.T @ (y - y_mean))
    return mean, std, w, y_mean


def ridge_probe(train_x, train_y, *, n_classes, ridge=1e-3):
    """Fit the ridge linear probe; returns ``(mean, std, W, b)`` (see the module docstring)."""
    if not isinstance(ridge, (int, float)) or not ridge > 0:
        raise SpecError(f"ridge must be a float > 0 (got ridge={ridge!r})")
    train_x = jnp.asarray(train_x)
    return _ridge_fit(train_x, jnp.asarray(train_y), jnp.asarray(ridge, train_x.dtype), n_classes)


def ridge_probe_accuracy(train_x, train_y, test_x, test_y, *, ridge=1e-3) -> float:
    """Test accuracy of the ridge-regression linear probe fitted on ``train_x``, ``train_y``.

    >>> import numpy as np
    >>> x = np.array([[2.0, 0.0], [3.0, 1.0], [-2.0, 0.0], [-3.0, 1.0]])
    >>> ridge_probe_accuracy(x, np.array([0, 0, 1, 1]), x[::-1], np.array([1, 1, 0, 0]))
    1.0
    """
    train_x, train_y, test_x, test_y, n_classes = _check_pair(train_x, train_y, test_x, test_y)
    mean, std, w, b = ridge_probe(train_x, train_y, n_classes=n_classes, ridge=ridge)
    pred = jnp.argmax(((test_x - mean) / std) @ w + b, axis=1)
    return float(jnp.mean(pred == test_y))
