"""Planted saddles with class sizes (issue 16; docs/theory.md section 10): the minimiser's rank
(:func:`ufm.systems.ufm.saddles.minimiser_rank`: the MSE closed form, else the convex program)
decides which ``d'`` give saddles, also under minority collapse, where it drops below ``K - 1``
(CE) or ``K`` (MSE without bias). The judge is the dense Hessian in float64: every planted point
is critical, above ``f*`` and has a negative eigenvalue; the padded optimum of the first excluded
``d'`` (the minimiser's rank) is the global minimum, not a saddle.

Two tiny configurations with minority collapse: MSE without bias, ``n = (8, 8, 2)``, where the
minority class mean is 0 (rank 2 < K = 3), and CE, ``n = (6, 6, 1, 1)``, where the two minority
classes merge (rank 2 < K - 1 = 3).
"""

import jax
import numpy as np
import pytest

import ufm
from ufm.systems.ufm import imbalanced_optimum, pad_params, planted_saddle
from ufm.systems.ufm.convex import with_convex_reference
from ufm.systems.ufm.saddles import minimiser_rank

MSE = ufm.UFMSpec(K=3, n=(8, 8, 2), d=3, loss="mse", lambda_W=0.1, lambda_H=0.1)
CE = ufm.UFMSpec(K=4, n=(6, 6, 1, 1), d=4, loss="ce", lambda_W=0.08, lambda_H=0.08)


_dense = jax.jit(ufm.hessian.hessian_spectrum_dense)


def _judge(spec, p):
    """``(f, ||grad f||, ascending dense Hessian eigenvalues)`` of one point."""
    f = float(ufm.loss(spec, p))
    g = jax.grad(ufm.loss, argnums=1)(spec, p)
    gnorm = float(np.sqrt(sum(np.sum(np.asarray(x) ** 2) for x in jax.tree_util.tree_leaves(g))))
    return f, gnorm, np.asarray(_dense(spec, p))


def test_mse_minority_collapse_rank_decides_the_saddles():
    opt = imbalanced_optimum(MSE)
    assert opt.rank == minimiser_rank(MSE) == 2 and opt.class_mean_norms[2] == 0.0
    assert ufm.saddle_dims(MSE) == (1,)  # not (1, 2): balanced MSE without bias has rank K
    f_star = ufm.optimal_value(MSE)
    # d' = 1: the optimum of the d = 1 problem (the top singular component of the minimiser,
    # Eckart-Young), padded: a strict saddle (critical, above f*, a negative eigenvalue)
    W, H = opt.params.W, opt.params.H
    p = planted_saddle(MSE, 1, ufm.UFMParams(W[:, :1], H[:1], None))
    f, gnorm, ev = _judge(MSE, p)
    assert gnorm <= 1e-12 and f > f_star + 1e-3 and ev[0] < -1e-3, (f, f_star, gnorm, ev[:3])
    nc = ufm.negative_curvature_direction(MSE, p, mix="optimal")
    assert bool(nc.found) and abs(float(nc.bound) - ev[0]) < 1e-10  # the escape direction
    # d' = 2 (the rank): the padded optimum of the d = 2 problem is the global minimum
    small = imbalanced_optimum(MSE.replace(d=2)).params
    f2, g2, ev2 = _judge(MSE, pad_params(small, 3))
    assert g2 <= 1e-12 and abs(f2 - f_star) <= 1e-14 and ev2[0] > -1e-12, (f2, f_star, ev2[:3])
    with pytest.raises(ValueError, match="d_small=2"):
        planted_saddle(MSE, 2, small)


def test_ce_minority_collapse_saddles_below_the_rank_are_strict():
    assert minimiser_rank(CE) == 2 < CE.K - 1  # the two minority classes merge
    assert ufm.saddle_dims(CE) == (1,)
    f_star = with_convex_reference(CE).f_convex  # no closed form: the convex program's value
    # the optimum of the d = 1 problem by gradient descent (a planted start), padded
    small = CE.replace(d=1)
    p0 = ufm.init_batch(small, jax.random.key(0), num_seeds=1)
    res = ufm.optimize(
        small, p0, ufm.OptimizerSettings(learning_rate=1.0, max_steps=3000, tol=1e-10)
    )
    p = planted_saddle(CE, 1, jax.tree_util.tree_map(lambda x: x[0], res.params))
    f, gnorm, ev = _judge(CE, p)
    assert gnorm <= 1e-9 and f > f_star + 1e-3 and ev[0] < -1e-3, (f, f_star, gnorm, ev[:3])
    assert float(ufm.certificate(CE, p).gap) > 1e-3  # the certificate fails: not global
    nc = ufm.negative_curvature_direction(CE, p)
    assert bool(nc.found) and ev[0] <= float(nc.bound) + 1e-12 and float(nc.bound) < 0
    # balanced classes keep their closed-form rule
    assert minimiser_rank(CE.replace(n=2)) == 3 and ufm.saddle_dims(CE.replace(n=2)) == (1, 2)
