"""Deep UFM: spec, objective, DNC / SRG theory, per-layer metrics (theory.md sections 4-5)."""

import itertools
import math
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import ufm

LAM = 4e-3


def spec_(K=3, n=2, L=3, widths=4, **kw):
    kw.setdefault("lambda_H1", LAM)
    kw.setdefault("lambda_W", LAM)
    return ufm.DeepUFMSpec(K=K, n=n, L=L, widths=widths, **kw)


# -- spec -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw, field",
    [
        (dict(L=0), "L"),
        (dict(widths=(4, 4)), "widths"),
        (dict(widths=(4, 0, 4)), r"widths\[1\]"),
        (dict(widths=2.5), "widths"),
        (dict(K=1), "K"),
        (dict(n=0), "n"),
        (dict(lambda_H1=-1.0), "lambda_H1"),
        (dict(lambda_W=(1e-3, -1e-3, 1e-3)), r"lambda_W\[1\]"),
        (dict(lambda_W=(1e-3, 1e-3)), "lambda_W"),
        (dict(lambda_W=float("nan")), "lambda_W"),
        (dict(activation="sigmoidish"), "activation"),
        (dict(loss="hinge"), "loss"),
        (dict(bias="sometimes"), "bias"),
        (dict(lambda_b=0.1), "lambda_b"),
        (dict(bias="regularized"), r"lambda_b\[0\]"),
        (dict(dtype="int8"), "dtype"),
    ],
)
def test_spec_validation_names_the_field(kw, field):
    with pytest.raises(ufm.SpecError, match=field):
        spec_(**kw)


def test_spec_normalisation_and_sizes():
    s = spec_(K=3, n=2, L=3, widths=(5, 4, 6), lambda_W=(1e-3, 2e-3, 3e-3), activation="linear")
    assert s.activation == "identity"
    assert s.lambda_W == (1e-3, 2e-3, 3e-3) and s.lambda_b == (0.0, 0.0, 0.0)
    assert s.dims == (5, 4, 6, 3) and s.weight_shapes == ((4, 5), (6, 4), (3, 6))
    p = ufm.init_params(s, jax.random.key(0))
    assert s.num_params == ravel_pytree(p)[0].size
    sb = spec_(L=2, widths=4, bias="regularized", lambda_b=0.1)
    pb = ufm.init_params(sb, jax.random.key(0))
    assert sb.num_params == ravel_pytree(pb)[0].size
    assert [b.shape for b in pb.biases] == [(4,), (3,)]
    assert spec_().replace(L=2, widths=3).widths == (3, 3)


def test_spec_is_a_pytree_with_traced_lambdas():
    s = spec_(L=3)
    leaves, treedef = jax.tree_util.tree_flatten(s)
    assert len(leaves) == 1 + 3 + 3  # lambda_H1, lambda_W x L, lambda_b x L
    p = ufm.init_params(s, jax.random.key(1))
    traces = []

    @jax.jit
    def f(spec, params):
        traces.append(1)
        return ufm.loss(spec, params)

    a = f(s, p)
    b = f(s.replace(lambda_H1=1e-2, lambda_W=(1e-2, 2e-2, 3e-2)), p)
    assert len(traces) == 1  # new lambdas, same shapes: no recompilation
    assert float(b) > float(a)
    np.testing.assert_allclose(a, ufm.loss(s, p), rtol=1e-13)


# -- objective ------------------------------------------------------------------------------------
def _numpy_loss(spec, p):
    """Independent numpy forward pass (ReLU / tanh), MSE or CE, with optional biases."""
    act = {"relu": lambda x: np.maximum(x, 0), "tanh": np.tanh, "identity": lambda x: x}[
        spec.activation
    ]
    H = np.asarray(p.H1)
    for i, W in enumerate(p.Ws):
        Z = np.asarray(W) @ H + (0 if p.biases is None else np.asarray(p.biases[i])[:, None])
        H = act(Z) if i < spec.L - 1 else Z
    Y = np.kron(np.eye(spec.K), np.ones((1, spec.n)))
    if spec.loss == "mse":
        fit = 0.5 * np.sum((H - Y) ** 2) / spec.N
    else:
        m = H.max(0)
        fit = np.mean(m + np.log(np.exp(H - m).sum(0)) - np.sum(H * Y, 0))
    reg = 0.5 * spec.lambda_H1 * np.sum(np.asarray(p.H1) ** 2)
    reg += sum(0.5 * lam * np.sum(np.asarray(W) ** 2) for lam, W in zip(spec.lambda_W, p.Ws))
    if spec.bias == "regularized":
        reg += sum(
            0.5 * lam * np.sum(np.asarray(b) ** 2) for lam, b in zip(spec.lambda_b, p.biases)
        )
    return fit + reg


@pytest.mark.parametrize(
    "kw",
    [
        dict(activation="relu", loss="mse"),
        dict(activation="tanh", loss="ce", lambda_W=(1e-3, 2e-3, 5e-3)),
        dict(activation="identity", loss="mse", bias="regularized", lambda_b=(0.1, 0.2, 0.3)),
        dict(activation="relu", loss="ce", bias="free"),
    ],
)
def test_loss_matches_numpy_forward_pass(kw):
    s = spec_(K=3, n=4, L=3, widths=(5, 4, 6), **kw)
    p = ufm.init_params(s, jax.random.key(2))
    if p.biases is not None:  # non-zero biases so that they matter
        p = p._replace(biases=tuple(0.3 * jnp.ones_like(b) for b in p.biases))
    np.testing.assert_allclose(ufm.loss(s, p), _numpy_loss(s, p), rtol=1e-12)
    terms = ufm.deep.deep_loss_terms(s, p)
    np.testing.assert_allclose(terms["fit"] + terms["reg"], ufm.loss(s, p), rtol=1e-13)


def test_one_layer_is_the_ufm():
    s = spec_(K=4, n=3, L=1, widths=6, lambda_H1=2e-3, lambda_W=7e-3)
    p = ufm.init_params(s, jax.random.key(3))
    u = ufm.UFMSpec(K=4, n=3, d=6, loss="mse", bias="none", lambda_W=7e-3, lambda_H=2e-3)
    np.testing.assert_allclose(
        ufm.loss(s, p), ufm.loss(u, ufm.UFMParams(p.Ws[0], p.H1)), rtol=1e-14
    )


def test_features_chain():
    s = spec_(K=3, n=2, L=3, widths=(5, 4, 6))
    p = ufm.init_params(s, jax.random.key(4))
    f = ufm.deep.deep_features(s, p)
    for i in range(s.L - 1):
        np.testing.assert_allclose(f.H[i + 1], jnp.maximum(f.Z[i], 0))
        np.testing.assert_allclose(f.Z[i], p.Ws[i] @ f.H[i])
    cm = ufm.deep.deep_class_means(s, p)
    for A, M in zip(f.H + f.Z, cm.H + cm.Z):
        np.testing.assert_allclose(
            M, ufm.metrics.class_means(A, ufm.systems.ufm.labels(s.K, s.n), s.K)[0], atol=1e-14
        )


@pytest.mark.xla_default  # bit for bit: XLA default flags (tests/conftest.py)
def test_init_scale_dtype_and_batch():
    s = spec_(K=5, n=20, L=3, widths=(50, 100, 40), dtype="float32")
    init = jax.jit(lambda k, sc: ufm.init_params(s, k, sc), static_argnums=1)
    p = init(jax.random.key(5), None)
    assert all(x.dtype == jnp.float32 for x in jax.tree_util.tree_leaves(p))
    assert abs(float(jnp.std(p.H1)) - 1.0) < 0.05
    for W, (_, fan_in) in zip(p.Ws, s.weight_shapes):
        assert abs(float(jnp.std(W)) * math.sqrt(fan_in) - 1.0) < 0.1
    p2 = init(jax.random.key(5), (2.0, 0.5))
    np.testing.assert_allclose(p2.H1, 0.5 * p.H1, rtol=1e-6)
    np.testing.assert_allclose(p2.Ws[1], 2.0 * p.Ws[1], rtol=1e-6)
    s64 = s.replace(dtype="float64", n=2, widths=(5, 6, 4))
    batch = jax.jit(lambda k: ufm.init_batch(s64, k, seeds=[3, 7]))(jax.random.key(6))
    one = ufm.init_params(s64, jax.random.fold_in(jax.random.key(6), 7))
    np.testing.assert_array_equal(batch.Ws[2][1], one.Ws[2])
    vm = jax.jit(jax.vmap(lambda q: ufm.loss(s64, q)))(batch)
    np.testing.assert_allclose(vm[1], ufm.loss(s64, one), rtol=1e-13)


# -- DNC theory -----------------------------------------------------------------------------------
@pytest.mark.parametrize("lam", [1e-4, 5e-3, 2e-2, 0.3])
def test_dnc_loss_one_layer_is_mse_ufm_optimum(lam):
    K, n = 4, 5
    s = spec_(K=K, n=n, L=1, widths=K, lambda_H1=lam, lambda_W=lam)
    ks = K * math.sqrt(n * lam * lam)
    expected = ks * (1 - ks / 2) if ks < 1 else 0.5
    np.testing.assert_allclose(ufm.deep.dnc_loss(s), expected, rtol=1e-13)
    u = ufm.UFMSpec(K=K, n=n, d=K, loss="mse", bias="none", lambda_W=lam, lambda_H=lam)
    np.testing.assert_allclose(ufm.deep.dnc_loss(s), ufm.optimal_value(u), rtol=1e-12)


@pytest.mark.parametrize("L", [2, 4, 6])
@pytest.mark.parametrize("c", [0.01, 0.1, 0.3, 0.6, 2.0])
def test_power_objective_min_against_grid(L, c):
    t = np.linspace(0, 1, 200_001)
    f = 0.5 * (1 - t) ** 2 + c * t ** (2 / (L + 1))
    i = np.argmin(f)
    val, ts = ufm.deep.power_objective_min(c, L)
    assert float(val) <= f[i] + 1e-15  # no worse than the grid
    assert f[i] - float(val) < 1e-8  # and the grid is 1e-5 fine
    np.testing.assert_allclose(0.5 * (1 - ts) ** 2 + c * ts ** (2 / (L + 1)), val, rtol=1e-14)


def test_dnc_loss_traceable_in_lambdas():
    s = spec_(K=10, n=5, L=4, widths=30)
    lams = jnp.array([1e-3, 4e-3, 1e-2, 5e-2])
    vm = jax.vmap(lambda lam: ufm.deep.dnc_loss(s.replace(lambda_H1=lam, lambda_W=lam)))(lams)
    loop = [
        float(ufm.deep.dnc_loss(s.replace(lambda_H1=float(x), lambda_W=float(x)))) for x in lams
    ]
    np.testing.assert_allclose(vm, loop, rtol=1e-12)


@pytest.mark.parametrize(
    "act, L", [("relu", 1), ("relu", 2), ("relu", 4), ("identity", 4), ("leaky_relu", 3)]
)
def test_dnc_point_attains_dnc_loss_and_is_critical(act, L):
    s = spec_(
        K=4,
        n=3,
        L=L,
        widths=(5, 6, 4, 7)[:L],
        activation=act,
        lambda_W=(3e-3, 5e-3, 4e-3, 6e-3)[:L],
        lambda_H1=2e-3,
    )
    p = ufm.deep.dnc_point(s)
    np.testing.assert_allclose(ufm.loss(s, p), ufm.deep.dnc_loss(s), rtol=0, atol=1e-12)
    assert float(ufm.loss(s, p)) < 0.5
    assert float(ufm.grad_norm(s, p)) < 1e-10
    terms = ufm.deep.deep_loss_terms(s, p)  # balanced: every regulariser term equal
    regs = [terms["reg_H1"]] + [terms[f"reg_W{i + 1}"] for i in range(L)]
    np.testing.assert_allclose(regs, regs[0], rtol=1e-10)


def test_dnc_point_is_zero_when_zero_wins():
    s = spec_(K=4, n=3, L=3, widths=4, lambda_H1=0.3, lambda_W=0.3)
    p = ufm.deep.dnc_point(s)
    assert float(ufm.deep.dnc_loss(s)) == 0.5
    assert float(ufm.core.tree_norm(p)) == 0.0


def test_dnc_requirements():
    with pytest.raises(ufm.SpecError, match="widths"):
        ufm.deep.dnc_point(spec_(K=4, widths=3))
    with pytest.raises(ufm.SpecError, match="activation"):
        ufm.deep.dnc_point(spec_(activation="tanh"))
    with pytest.raises(ufm.SpecError, match="loss"):
        ufm.deep.dnc_loss(spec_(loss="ce"))
    with pytest.raises(ufm.SpecError, match="lambda_W"):
        ufm.deep.dnc_point(spec_(lambda_W=(LAM, 0.0, LAM)))


# -- the origin ----------------------------------------------------------------------------------
@pytest.mark.parametrize("act, L", [("tanh", 2), ("relu", 2), ("gelu", 3), ("relu", 3)])
def test_origin_is_strict_local_min_for_deep(act, L):
    s = spec_(K=3, n=2, L=L, widths=(3, 4, 3)[:L], activation=act, lambda_W=(2e-3, 3e-3, 5e-3)[:L])
    p0 = jax.tree_util.tree_map(jnp.zeros_like, ufm.init_params(s, jax.random.key(0)))
    x0, unravel = ravel_pytree(p0)
    f = lambda x: ufm.loss(s, unravel(x))  # noqa: E731
    np.testing.assert_allclose(jax.grad(f)(x0), 0.0, atol=1e-15)
    hess = jax.jit(jax.hessian(f))(x0)
    diag = ravel_pytree(
        ufm.DeepUFMParams(
            tuple(jnp.full(W.shape, lam) for W, lam in zip(p0.Ws, s.lambda_W)),
            jnp.full(p0.H1.shape, s.lambda_H1),
        )
    )[0]
    np.testing.assert_allclose(hess, np.diag(diag), atol=1e-14)
    assert np.linalg.eigvalsh(np.asarray(hess)).min() > 0
    # and the loss really grows in random directions (nonsmooth ReLU included): f - f(0) ~ reg
    for k in range(5):
        v = jax.random.normal(jax.random.key(10 + k), x0.shape, x0.dtype)
        eps = 1e-5
        quad = 0.5 * eps**2 * jnp.sum(diag * v**2)
        df = jax.jit(f)(eps * v) - f(x0)
        assert df > 0 and abs(df / quad - 1) < 1e-2


def test_origin_is_a_saddle_for_one_layer():
    s = spec_(K=3, n=2, L=1, widths=3)  # K s < 1: the UFM origin is a strict saddle
    x0, unravel = ravel_pytree(
        jax.tree_util.tree_map(jnp.zeros_like, ufm.init_params(s, jax.random.key(0)))
    )
    hess = jax.jit(jax.hessian(lambda x: ufm.loss(s, unravel(x))))(x0)
    assert np.linalg.eigvalsh(np.asarray(hess)).min() < 0


# -- SRG construction -----------------------------------------------------------------------------
@pytest.mark.parametrize("r", [3, 4, 5, 7])
def test_edge_incidence_and_srg_gram(r):
    B = ufm.deep.edge_incidence(r)
    K = r * (r - 1) // 2
    assert B.shape == (r, K) and (B.sum(0) == 2).all() and (B.sum(1) == r - 1).all()
    M = B.T @ B - np.ones((K, K))
    edges = list(itertools.combinations(range(r), 2))
    for a, b in itertools.product(range(K), repeat=2):
        shared = len(set(edges[a]) & set(edges[b]))
        assert M[a, b] == {2: 1, 1: 0, 0: -1}[shared]
    np.testing.assert_array_equal(np.maximum(M, 0), np.eye(K))
    assert np.linalg.matrix_rank(M) == (r - 1 if r == 4 else r)


def _srg_spec(r, L, n=2, extra=0):
    K = r * (r - 1) // 2
    return spec_(
        K=K,
        n=n,
        L=L,
        widths=tuple([r + extra] * (L - 1) + [K + extra]),
        lambda_W=tuple(LAM * (1 + 0.1 * i) for i in range(L)),
    )


@pytest.mark.parametrize(
    "r, L, optimize_offsets",
    [
        (3, 2, True),
        (4, 3, True),
        (5, 4, True),
        (6, 3, True),
        (5, 5, True),
        (5, 4, False),
        (4, 3, False),
    ],
)
def test_srg_construction_is_consistent(r, L, optimize_offsets):
    s = _srg_spec(r, L, extra=1)
    sol = ufm.deep.srg_construction(s, optimize_offsets=optimize_offsets)
    np.testing.assert_allclose(ufm.loss(s, sol.params), sol.loss, rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        ufm.deep.srg_loss(s, optimize_offsets=optimize_offsets), sol.loss, atol=1e-13
    )
    f = ufm.deep.deep_features(s, sol.params)
    out = np.asarray(f.Z[-1])
    t = out[0, 0]
    np.testing.assert_allclose(out, t * np.kron(np.eye(s.K), np.ones((1, s.n))), atol=1e-12)
    for i in range(1, L - 1):  # pre-activations of H_2..H_{L-1} are non-negative: ReLU inert
        assert s.activation == "relu"
        assert np.asarray(f.Z[i - 1]).min() > -1e-12
        np.testing.assert_allclose(f.H[i], f.Z[i - 1], rtol=0, atol=1e-12)  # H = relu(Z) = Z
    cm = ufm.deep.deep_class_means(s, sol.params)
    ranks = tuple(int(ufm.metrics.numerical_rank(M, 1e-8)) for M in cm.H)
    assert ranks == sol.ranks["H"]
    assert int(ufm.metrics.numerical_rank(cm.Z[L - 2], 1e-8)) == sol.ranks["M"]
    if not optimize_offsets:  # theory.md: class means of layers 1..L-1 exactly proportional to B
        B = ufm.deep.edge_incidence(r)
        for M in cm.H[:-1]:
            X = np.asarray(M)[:r]
            np.testing.assert_allclose(X / X.max(), B, atol=1e-12)
        expected = (2 ** (L - 3) * r / (r - 1) ** (L - 2)) ** (1 / (L + 1))
        np.testing.assert_allclose(sol.ratio, expected, rtol=1e-12)


@pytest.mark.parametrize("r, L", [(4, 3), (5, 3), (7, 3), (12, 3), (5, 4), (6, 5), (3, 4), (4, 2)])
def test_srg_offsets_solve_the_convex_problem(r, L):
    """The closed-form taut string against a generic bounded optimiser on the same objective."""
    from scipy.optimize import minimize

    from ufm.systems.deep_ufm.theory import _srg_offsets

    m, gamma = r - 1, 2 * (r - 1) / (r - 2)
    q = ((r - 1) * (r - 4) / 2 / (r - 2)) ** 2

    def cost(u):  # u = log x_1..x_{L-1}
        x = np.concatenate([[1.0], np.exp(u)])
        c = sum(np.log(x[i + 1] / x[i] + m) for i in range(L - 1))
        return c + np.log(q / x[-1] + m)

    bounds = [(-30, 30)] + [(math.log(gamma), 30)] * (L - 2)
    best = min(
        (
            minimize(
                cost,
                np.full(L - 1, u0),
                bounds=bounds,
                method="L-BFGS-B",
                options=dict(ftol=1e-15, gtol=1e-12),
            )
            for u0 in (0.5, 2.0, 4.0)
        ),
        key=lambda res: res.fun,
    )
    x = _srg_offsets(r, L, True)
    ours = cost(np.log(np.maximum(x, 1e-300)))
    assert ours <= best.fun + 1e-10


def test_srg_beats_dnc_exactly_where_expected():
    # L = 4, K = 10 (the paper's Fig. 2 setting): the low-rank construction wins
    s = _srg_spec(5, 4)
    assert float(ufm.deep.srg_loss(s)) < float(ufm.deep.dnc_loss(s)) < 0.5
    assert float(ufm.deep.srg_loss(s, optimize_offsets=False)) < float(ufm.deep.dnc_loss(s))
    # L = 3 needs r >= 11 for this construction; L = 2 never (DNC is optimal there, Sukenik 2023)
    s3 = _srg_spec(12, 3, n=1).replace(lambda_H1=1e-4, lambda_W=1e-4)
    assert float(ufm.deep.srg_loss(s3)) < float(ufm.deep.dnc_loss(s3))
    assert ufm.deep.srg_ratio(10, 3) >= 1 - 1e-12 and ufm.deep.srg_ratio(11, 3) < 1
    assert all(ufm.deep.srg_ratio(r, 2) >= 1 - 1e-12 for r in range(3, 15))
    assert all(ufm.deep.srg_ratio(r, L) < 1 for r in range(4, 12) for L in (4, 5, 6))


def test_srg_requirements():
    with pytest.raises(ufm.SpecError, match="K = 5"):
        ufm.deep.srg_construction(spec_(K=5, L=3, widths=5))
    with pytest.raises(ufm.SpecError, match="r must"):
        ufm.deep.srg_loss(_srg_spec(5, 4), r=4)
    with pytest.raises(ufm.SpecError, match="widths"):
        ufm.deep.srg_construction(spec_(K=10, L=3, widths=(5, 5, 9)))
    with pytest.raises(ufm.SpecError, match="activation"):
        ufm.deep.srg_construction(_srg_spec(5, 4).replace(activation="identity"))
    with pytest.raises(ufm.SpecError, match="L must"):
        ufm.deep.srg_loss(spec_(K=10, L=1, widths=10))


# -- metrics --------------------------------------------------------------------------------------
def _jit_metrics(s, **kw):
    return jax.jit(lambda p: ufm.deep.deep_metrics(s, p, **kw))


def test_metrics_at_dnc_point():
    s = spec_(K=4, n=3, L=3, widths=(5, 6, 7))
    m = _jit_metrics(s)(ufm.deep.dnc_point(s))
    assert sorted(m) == sorted(ufm.deep.deep_metric_names(3))
    for k, v in m.items():
        if k.startswith("rank"):
            assert int(v) == 4, k
        else:
            assert abs(float(v)) < 1e-12, (k, v)


def test_metrics_at_srg_point_show_low_rank():
    s = _srg_spec(5, 4, extra=2)
    sol = ufm.deep.srg_construction(s)
    m = _jit_metrics(s, tau=1e-6)(sol.params)
    assert [int(m[f"rank_H{l}"]) for l in range(1, 5)] == [5, 5, 5, 10]
    assert int(m["rank_Z3"]) == 5 and int(m["rank_Z4"]) == 10
    for l in range(1, 5):
        assert float(m[f"dnc1_quot_H{l}"]) < 1e-20 and float(m[f"dnc3_span_W{l}"]) < 1e-12
    assert float(m["dnc3_row_W2"]) > 1e-3  # weights are not collinear with single class means
    assert float(m["dnc2_H4"]) < 1e-12  # the last hidden layer is an orthogonal frame
    assert float(m["dnc2_H3"]) > 1e-2  # the low-rank layers are not


def test_metrics_against_numpy_and_vmap():
    """deep_metrics (built on the ufm primitives) vs a numpy reference; vmap vs single call."""
    s = spec_(K=3, n=4, L=2, widths=(5, 6))
    batch = jax.jit(lambda k: ufm.init_batch(s, k, 3))(jax.random.key(0))
    vm = jax.jit(jax.vmap(lambda p: ufm.deep.deep_metrics(s, p, tau=0.05)))(batch)
    p = jax.tree_util.tree_map(lambda x: x[1], batch)
    f = ufm.deep.deep_features(s, p)
    K, n, N = s.K, s.n, s.N
    ref = {}
    for l in (1, 2):
        for X, A in (("H", f.H[l - 1]), ("Z", f.Z[l - 1])):  # numpy reference, theory.md section 5
            A = np.asarray(A)
            means = A.reshape(A.shape[0], K, n).mean(2)
            M = means - means.mean(1, keepdims=True)
            R = A - np.repeat(means, n, axis=1)
            Sw, Sb = R @ R.T / N, M @ M.T / K
            ref[f"dnc1_pinv_{X}{l}"] = (
                np.trace(Sw @ np.linalg.pinv(Sb, rcond=1e-10, hermitian=True)) / K
            )
            ref[f"dnc1_quot_{X}{l}"] = np.trace(Sw) / np.trace(Sb)
            if (X, l) == ("H", 2):  # post-ReLU: orthogonal frame of the uncentred means
                G, T = means.T @ means, np.eye(K) / np.sqrt(K)
            else:
                G, T = M.T @ M, (np.eye(K) - 1 / K) / np.sqrt(K - 1)
            ref[f"dnc2_{X}{l}"] = np.linalg.norm(G / np.linalg.norm(G) - T)
            sv = np.linalg.svd(means, compute_uv=False)
            ref[f"rank_{X}{l}"] = np.sum(sv > 0.05 * sv[0])
        A = np.asarray(f.H[l - 1])
        means = A.reshape(A.shape[0], K, n).mean(2)
        W = np.asarray(p.Ws[l - 1])
        U, sv, _ = np.linalg.svd(means, full_matrices=False)
        Uk = U[:, sv > 0.05 * sv[0]]
        ref[f"dnc3_span_W{l}"] = 1 - np.sum((W @ Uk) ** 2) / np.sum(W**2)
        cos2 = (W @ means) ** 2 / np.outer(np.sum(W**2, 1), np.sum(means**2, 0))
        ref[f"dnc3_row_W{l}"] = np.sum(np.sum(W**2, 1) * (1 - cos2.max(1))) / np.sum(W**2)
    W2 = np.asarray(p.Ws[1])
    ref["dnc3_papyan_W2"] = np.sum((W2.T / np.linalg.norm(W2) - means / np.linalg.norm(means)) ** 2)
    assert set(ref) == set(vm)
    for k in ref:
        np.testing.assert_allclose(vm[k][1], ref[k], rtol=1e-9, atol=1e-13, err_msg=k)
    assert (vm["dnc1_quot_H1"] > 0.1).all()  # random features are far from collapse
    m = jax.jit(lambda p: ufm.nc_metrics(s, p, tau=0.05))(
        jax.tree_util.tree_map(lambda x: x[0], batch)
    )
    for k in m:
        np.testing.assert_allclose(m[k], vm[k][0], rtol=1e-10, atol=1e-14)


# -- Hessian structure ----------------------------------------------------------------------------
def test_block_arrow_split_matches_dense_hessian():
    ba_mod = pytest.importorskip("ufm.hessian.structure")
    s = spec_(K=2, n=2, L=2, widths=(2, 3), activation="tanh", bias="free")
    p = ufm.init_params(s, jax.random.key(3))
    p = p._replace(biases=tuple(0.2 * jnp.ones_like(b) for b in p.biases))
    u0, unravel_theta = ravel_pytree((p.Ws, p.biases))  # block-arrow order: theta, then vec(H_1)
    P, shape = u0.size, p.H1.shape

    def f(x):
        Ws, biases = unravel_theta(x[:P])
        return ufm.loss(s, ufm.DeepUFMParams(Ws, x[P:].reshape(shape), biases))

    x0 = jnp.concatenate([u0, p.H1.reshape(-1)])
    dense = jax.jit(jax.hessian(f))(x0)
    ba = ba_mod.block_arrow(s, p, method="autodiff")
    for k in range(3):
        v = jax.random.normal(jax.random.key(20 + k), x0.shape, x0.dtype)
        np.testing.assert_allclose(
            ba_mod.block_arrow_matvec(ba, v), dense @ v, rtol=1e-10, atol=1e-12
        )


# -- gradient descent: the two headline behaviours (cheap versions of experiments/deep_ufm.py) ----
def _gd(s, seeds, steps, lr=0.5):
    p0 = jax.jit(lambda k: ufm.init_batch(s, k, seeds))(jax.random.key(0))
    res = ufm.optimize(s, p0, optimizer=ufm.gd(lr), max_steps=steps, tol=1e-10, chunk=steps)
    return res, jax.jit(jax.vmap(lambda p: ufm.deep.deep_metrics(s, p)))(res.params)


def test_gd_binary_reaches_dnc_and_never_goes_below():
    """K = 2 (Sukenik et al. 2023, arXiv 2305.13165): DNC is optimal and GD reaches it."""
    s = spec_(K=2, n=2, L=4, widths=10)
    res, m = _gd(s, 4, 20_000)
    gap = np.asarray(res.loss) - float(ufm.deep.dnc_loss(s))
    assert (gap > -1e-10).all() and (gap < 1e-4).all(), gap
    for l in range(1, 5):
        assert (np.asarray(m[f"rank_H{l}"]) == 2).all()


def test_gd_finds_low_rank_solutions_below_dnc():
    """K = 10, L = 4 (Sukenik et al. 2024, arXiv 2405.14468): GD ends below L_DNC with low rank."""
    s = spec_(K=10, n=1, L=4, widths=15)
    res, m = _gd(s, 4, 10_000)
    below = np.asarray(res.loss) < float(ufm.deep.dnc_loss(s))
    assert below.sum() >= 3, res.loss
    assert (np.asarray(m["rank_H1"])[below] < 10).all()


def test_experiment_cli_smoke(tmp_path):
    """The reproduction script parses its options and writes its summary (theory panel only)."""
    import importlib.util
    import json
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[3] / "experiments" / "deep_ufm.py"
    spec = importlib.util.spec_from_file_location("deep_ufm_experiment", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.modules.pop(spec.name, None)
    cfg = mod.parse_args(["--fast", "--only", "fig3_ratio,binary", "--widths", "10,20", "--n", "3"])
    assert (
        cfg.fast and cfg.only == ("fig3_ratio", "binary") and cfg.widths == (10, 20) and cfg.n == 3
    )
    with pytest.raises(SystemExit):
        mod.parse_args(["--only", "fig9"])
    out = mod.main(["--fast", "--only", "fig3_ratio", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["fig3_ratio"]["L4"]["constant_ratio"] == out["fig3_ratio"]["L4"]["constant_ratio"]
    assert (tmp_path / "fig3_ratio.png").exists()
    # the r = 5, L = 4 point is the Fig. 2 setting: the construction beats DNC there
    assert saved["fig3_ratio"]["L4"]["constant_ratio"][2] < 1
