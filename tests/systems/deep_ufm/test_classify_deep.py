"""Classification of deep-UFM critical points (ufm.systems.deep_ufm.facts).

Checked against: the closed-form zero-mode formula at constructed critical points of the deep
linear UFM (every direction of the class-mean map at a stationary point of the DNC scalar problem:
the minimum ``t_a``, the unstable root ``t_b`` or 0), the closed-form spectrum at the origin,
dense ``eigh`` against the block-arrow inertia and Lanczos at the same points, L-BFGS + Newton
minima and rank-restricted saddles of a tanh network, a ReLU network that coincides locally
with a linear one, and the UFM's record columns. Float64 throughout (tests/conftest.py).
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ufm

K, N_PER, WIDTH = 3, 2, 4
KEY = jax.random.key(0)


def spec_(L=2, activation="identity", **kw):
    return ufm.DeepUFMSpec(K=K, n=N_PER, L=L, widths=WIDTH, activation=activation, **kw)


def z(d, r):
    """``dim O(d) - dim O(d - r)``."""
    return d * (d - 1) // 2 - (d - r) * (d - r - 1) // 2


def _stack(*ps):
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *ps)


def _take(batch, i):
    return jax.tree_util.tree_map(lambda x: x[i], batch)


def _scalar_roots(spec):
    """Non-zero stationary points ``t_a > t_m > t_b`` of ``(1-t)^2/2 + c t^q`` (bisection)."""
    q = 2.0 / (spec.L + 1)
    c = float(ufm.deep.dnc_constant(spec))
    t_m = (1 - q) / (2 - q)
    phi = lambda t: t ** (1 - q) * (1 - t) - c * q  # noqa: E731  (> 0 between the roots)

    def bisect(lo, hi, rising):
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if (phi(mid) > 0) == rising:
                hi = mid
            else:
                lo = mid
        return 0.5 * (lo + hi)

    assert phi(t_m) > 0
    return bisect(t_m, 1.0, rising=False), bisect(0.0, t_m, rising=True)


def pattern_point(spec, pattern):
    """Identity-network critical point with class direction ``k`` at ``t_k`` in {t_a, t_b, 0}.

    The DNC point is diagonal in the class directions; scaling direction ``k`` of every block by
    ``(t_k / t_a)^{1/(L+1)}`` keeps it balanced and puts its product at ``t_k``.
    """
    t_a, t_b = _scalar_roots(spec)
    assert (
        abs(t_a - float(ufm.deep.power_objective_min(ufm.deep.dnc_constant(spec), spec.L)[1]))
        < 1e-9
    )
    t = np.array([{"a": t_a, "b": t_b, "0": 0.0}[ch] for ch in pattern])
    f = (t / t_a) ** (1.0 / (spec.L + 1))
    p = ufm.deep.dnc_point(spec)
    scale = lambda n: jnp.asarray(np.r_[f, np.ones(n - spec.K)])[:, None]  # noqa: E731
    return ufm.DeepUFMParams(
        tuple(scale(W.shape[0]) * W for W in p.Ws), scale(spec.widths[0]) * p.H1, None
    )


def pattern_formula(spec, pattern):
    """``sum_l z(d_l, r) + z(K, r) - sum_j m_j(m_j-1)/2`` (docstring of
    ufm.systems.deep_ufm.facts)."""
    active = [ch for ch in pattern if ch != "0"]
    r = len(active)
    mults = [active.count(ch) for ch in set(active)]
    return sum(z(d, r) for d in spec.widths) + z(spec.K, r) - sum(m * (m - 1) // 2 for m in mults)


def _rows(spec, batch, method):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ufm.CounterexampleWarning)
        return ufm.classify_batch(spec, batch, method=method)


def _agree(spec, batch, lanczos=True):
    """Dense, block-arrow and Lanczos (Krylov depth = p: exact) on the same points."""
    dense = _rows(spec, batch, "dense")
    ba = _rows(spec, batch, "block_arrow")
    for k in ("n_neg", "n_zero", "n_pos", "class_code", "zero_modes_predicted", "rank"):
        np.testing.assert_array_equal(ba[k], dense[k], err_msg=k)
    scale = float(np.abs(dense["lambda_max"]).max())
    np.testing.assert_allclose(ba["lambda_min"], dense["lambda_min"], rtol=0, atol=1e-9 * scale)
    if not lanczos:
        return dense
    lz = _rows(spec, batch, "lanczos")
    np.testing.assert_allclose(lz["lambda_min"], dense["lambda_min"], rtol=0, atol=1e-9 * scale)
    np.testing.assert_allclose(lz["lambda_max"], dense["lambda_max"], rtol=1e-9)
    # Lanczos has no counts; its class agrees except where the zero-mode check decides
    decided = dense["class"] != "degenerate"
    np.testing.assert_array_equal(lz["class"][decided], dense["class"][decided])
    return dense


# -- the deep linear UFM: closed-form zero modes --------------------------------------------------
PATTERNS = {
    "aaa": "local_min",
    "aa0": "local_min",
    "a00": "local_min",
    "000": "local_min",
    "ab0": "strict_saddle",
    "aab": "strict_saddle",
    "bbb": "strict_saddle",
}


def _pattern_batch(spec):
    """The points of PATTERNS (the origin is "000") and a random point: 8 points, one compile."""
    return _stack(*(pattern_point(spec, p) for p in PATTERNS), ufm.init_params(spec, KEY))


@pytest.mark.parametrize("L", [2, 3])
def test_identity_points_zero_modes_match_the_formula(L):
    spec = spec_(L=L, lambda_H1=5e-3, lambda_W=5e-3)
    batch = _pattern_batch(spec)
    # block-arrow against dense at L = 3 only, Lanczos on the tanh points (compilation time)
    rows = _agree(spec, batch, lanczos=False) if L == 3 else _rows(spec, batch, "dense")
    assert rows["class"][-1] == "not_critical"
    rows = {k: v[:-1] for k, v in rows.items()}
    formula = np.array([pattern_formula(spec, p) for p in PATTERNS])
    assert (rows["grad_norm"] < 1e-12).all()
    np.testing.assert_array_equal(rows["class"], list(PATTERNS.values()))
    np.testing.assert_array_equal(rows["zero_modes_predicted"], formula)
    np.testing.assert_array_equal(rows["n_zero"], formula)
    # DNC: only the hidden rotations, sum_l z(d_l, K); the reference is L_DNC itself
    assert formula[0] == L * z(WIDTH, K)
    assert abs(rows["f_gap"][0]) < 1e-12 and (rows["f_gap"][1:] > 0.1).all()
    assert np.isnan(rows["certificate_gap"]).all() and np.isnan(rows["curvature_bound"]).all()
    assert np.isnan(rows["cert_tol"]).all() and np.isnan(rows["sigma_1"]).all()
    np.testing.assert_array_equal(rows["rank"], [3, 2, 1, 0, 2, 3, 3])
    # the zero modes sit well inside zero_tol, the rest well outside
    assert (rows["zero_max"] < 1e-3 * rows["zero_tol"]).all()
    assert (rows["lambda_pos_min"] > 1e3 * rows["zero_tol"]).all()


def test_l1_deep_spec_matches_the_ufm():
    """``L = 1`` is the UFM: the DNC point is the MSE optimum with ``z(d, K)`` zero modes."""
    spec = spec_(L=1, lambda_H1=5e-3, lambda_W=5e-3)
    rec = ufm.classify(spec, ufm.deep.dnc_point(spec), method="dense")
    uspec = ufm.UFMSpec(K=K, n=N_PER, d=WIDTH, loss="mse", lambda_W=5e-3, lambda_H=5e-3)
    urec = ufm.classify(uspec, ufm.optimum(uspec).params, method="dense")
    assert ufm.CLASS_NAMES[int(rec.code)] == "local_min"  # no certificate for the deep spec
    assert ufm.CLASS_NAMES[int(urec.code)] == "global_min"
    for k in ("n_neg", "n_zero", "n_pos", "zero_modes_predicted", "rank"):
        assert int(getattr(rec, k)) == int(getattr(urec, k)), k
    assert abs(float(rec.f_star) - float(urec.f_star)) < 1e-12
    assert abs(float(rec.lambda_min) - float(urec.lambda_min)) < 1e-12


# -- tanh: minima (L-BFGS + Newton), saddles from rank-restricted starts, origin, random points --
LAMS = dict(lambda_H1=3e-3, lambda_W=(5e-3, 7e-3, 4e-3))  # distinct: the origin's spectrum


@pytest.fixture(scope="module")
def tanh_points():
    """Eight points of one spec (one compilation per method): two minima (full space), two
    saddles (W_1, H_1 in a rank-1 / rank-2 subspace, an invariant subspace of the O(d_1) action),
    minimised by L-BFGS and polished by Newton, then the origin and three random points."""
    spec = spec_(L=3, activation="tanh", **LAMS)
    p0 = ufm.init_batch(spec, KEY, 4)
    mask = jnp.asarray([[1, 1, 1, 1], [1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 0, 0]], jnp.float64)
    p0 = p0._replace(H1=p0.H1 * mask[:, :, None], Ws=(p0.Ws[0] * mask[:, None, :],) + p0.Ws[1:])
    # L-BFGS (its iterates stay in the subspace, GD oscillates there at lr 0.5), then Newton
    pol = ufm.polish(spec, ufm.polish(spec, p0, method="lbfgs", max_iter=1000, tol=1e-9).params)
    assert bool(pol.converged.all()), np.asarray(pol.grad_norm)
    zero = jax.tree_util.tree_map(jnp.zeros_like, _take(p0, 0))
    extra = _stack(zero, *(ufm.init_params(spec, jax.random.key(i)) for i in (1, 2, 3)))
    return spec, jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b]), pol.params, extra)


@pytest.fixture(scope="module")
def tanh_rows(tanh_points):
    return _agree(*tanh_points)


def test_tanh_minima_and_saddles(tanh_points, tanh_rows):
    spec, batch = tanh_points
    rows = {k: v[:4] for k, v in tanh_rows.items()}
    np.testing.assert_array_equal(
        rows["class"], ["local_min", "local_min", "strict_saddle", "strict_saddle"]
    )
    assert (rows["n_neg"][:2] == 0).all() and (rows["lambda_min"][:2] > -rows["zero_tol"][:2]).all()
    assert (rows["n_neg"][2:] > 0).all()
    # only O(d_1) on (W_1, H_1): z(d_1, r_1), r_1 = rank [W_1; H_1^T] = rank W_1
    r1 = [np.linalg.matrix_rank(np.asarray(_take(batch, i).Ws[0]), tol=1e-6) for i in range(4)]
    np.testing.assert_array_equal(rows["rank"], r1)
    np.testing.assert_array_equal(rows["rank"][2:], [1, 2])
    np.testing.assert_array_equal(rows["n_zero"], [z(WIDTH, r) for r in r1])
    np.testing.assert_array_equal(rows["zero_modes_predicted"], rows["n_zero"])
    # minima sit near L_DNC (tanh does not attain it), saddles far above
    assert (np.abs(rows["f_gap"][:2]) < 0.05).all() and (rows["f_gap"][2:] > 0.01).all()


def test_origin_is_a_local_min_with_the_closed_form_spectrum(tanh_points, tanh_rows):
    """For ``L >= 2`` the fit term is ``O(||theta||^{L+1})`` at 0: ``Hess = diag(lambda)``."""
    spec, batch = tanh_points
    zero = _take(batch, 4)
    assert tanh_rows["class"][4] == "local_min"
    assert tanh_rows["loss"][4] == 0.5 and tanh_rows["n_neg"][4] == 0
    assert tanh_rows["zero_modes_predicted"][4] == 0 and tanh_rows["rank"][4] == 0
    sizes = [WIDTH * spec.N] + [a * b for a, b in spec.weight_shapes]
    expected = np.sort(np.repeat([spec.lambda_H1, *spec.lambda_W], sizes))
    np.testing.assert_allclose(
        jax.jit(ufm.hessian.hessian_spectrum_dense)(spec, zero), expected, atol=1e-15
    )
    assert tanh_rows["lambda_min"][4] == pytest.approx(3e-3, abs=1e-15)
    assert tanh_rows["f_gap"][4] == pytest.approx(0.5 - float(ufm.deep.dnc_loss(spec)), abs=1e-14)


def test_random_points_are_not_critical(tanh_rows):
    assert (tanh_rows["class"][5:] == "not_critical").all()
    assert (tanh_rows["zero_modes_predicted"][5:] == z(WIDTH, WIDTH)).all()


def test_ce_free_bias_adds_the_shift_mode():
    spec = spec_(L=2, activation="tanh", bias="free", loss="ce", lambda_H1=5e-3, lambda_W=5e-3)
    p = ufm.init_params(spec, KEY)
    assert int(ufm.deep.deep_zero_mode_count(spec, p)) == z(WIDTH, WIDTH) + 1
    rec = jax.jit(lambda p: ufm.classify(spec, p, method="dense"))(p)
    assert np.isnan(float(rec.f_star))  # no reference value for CE
    assert int(rec.zero_modes_predicted) == z(WIDTH, WIDTH) + 1


def test_vmap_matches_batch(tanh_points, tanh_rows):
    spec, batch = tanh_points
    rows = tanh_rows
    rec = jax.vmap(lambda p: ufm.classify(spec, p, method="dense"))(batch)
    np.testing.assert_array_equal(np.asarray(rec.code), rows["class_code"])
    np.testing.assert_allclose(
        np.asarray(rec.lambda_min), rows["lambda_min"], rtol=1e-12, atol=1e-15
    )


def test_records_have_the_ufm_columns(tanh_rows):
    uspec = ufm.UFMSpec(K=3, n=2, d=3, loss="mse")
    ubatch = jax.tree_util.tree_map(lambda x: x[None], ufm.optimum(uspec).params)
    deep, flat = tanh_rows, ufm.classify_batch(uspec, ubatch)
    assert list(deep) == list(flat)
    assert {k: v.dtype for k, v in deep.items()} == {k: v.dtype for k, v in flat.items()}
    assert set(deep["class"]) <= set(ufm.CLASS_NAMES)


def test_degenerate_and_warning_when_zero_modes_are_missing_from_the_prediction():
    """A spec whose symmetry the prediction omits: with ``rank_atol`` above the weights' scale the
    prediction is 0, so the DNC point's zero modes are 'extra' and the point is flagged."""
    spec = spec_(L=2, lambda_H1=5e-3, lambda_W=5e-3)
    with pytest.warns(ufm.CounterexampleWarning, match="degenerate"):
        rows = ufm.classify_batch(spec, _pattern_batch(spec), method="dense", rank_atol=1e3)
    assert (rows["zero_modes_predicted"] == 0).all()
    # DNC: degenerate (its 2 z(4, 3) rotation modes are not predicted); the origin has none
    assert rows["class"][0] == "degenerate" and rows["n_zero"][0] == 2 * z(WIDTH, K)
    assert rows["class"][3] == "local_min" and rows["n_zero"][3] == 0
    assert rows["class"][4] == "strict_saddle"  # negative curvature decides first


# -- ReLU: kinks and the locally linear piece -----------------------------------------------------
def test_relu_kink_raises_naming_the_layer():
    spec = spec_(L=2, activation="relu")
    dnc = ufm.deep.dnc_point(spec)  # Z_1 = a [I_3; 0] (x) 1_2^T: 18 of 24 entries exactly 0
    with pytest.raises(ValueError, match=r"layer 1: 18 of 24 entries of Z_1"):
        ufm.classify(spec, dnc)
    rnd = ufm.init_params(spec, KEY)
    with pytest.raises(ValueError, match=r"point 1: layer 1: 18 of 24"):
        ufm.classify_batch(spec, _stack(rnd, dnc))
    with pytest.raises(ValueError, match="traced"):
        jax.vmap(lambda p: ufm.classify(spec, p))(_stack(rnd, rnd))
    # a random point has no kink: classified (it is not critical)
    assert ufm.CLASS_NAMES[int(ufm.classify(spec, rnd, method="dense").code)] == "not_critical"
    # leaky ReLU has the kink too
    with pytest.raises(ValueError, match="leaky_relu"):
        ufm.classify(spec_(L=2, activation="leaky_relu"), dnc)


def free_bias_dnc(spec):
    """Critical point of the identity network with free biases: the output bias ``1/K`` takes the
    class mean and the DNC shape with the DNC scales fits the centred targets ``I - J/K`` (the
    same scalar problem per direction): class means ``a_0 [V^T; 0]``, ``W_L = a_L [V 0]``, ``V``
    an orthonormal basis of ``1^perp``; the residual has zero row sums, so no bias gradient."""
    d = spec.widths
    V = np.linalg.svd(np.eye(K) - 1.0 / K)[0][:, : K - 1]
    p = ufm.deep.dnc_point(spec.replace(bias="none"))
    left = np.zeros((d[0], K))
    left[: K - 1] = V.T
    right = np.zeros((d[-1], d[-1]))
    right[:K, : K - 1] = V
    keep = lambda m: jnp.asarray(np.r_[np.ones(K - 1), np.zeros(m - K + 1)])[:, None]  # noqa: E731
    Ws = tuple(keep(W.shape[0]) * W for W in p.Ws[:-1]) + (p.Ws[-1] @ jnp.asarray(right),)
    biases = tuple(jnp.zeros(m) for m in d[1:]) + (jnp.full(K, 1.0 / K),)
    return ufm.DeepUFMParams(Ws, jnp.asarray(left) @ p.H1[:K], biases)


def test_relu_point_on_a_linear_piece_matches_the_identity_network():
    """An identity-network critical point with free biases, its hidden pre-activations translated
    to be positive (a symmetry: ``b_l + v``, ``b_{l+1} - W_{l+1} v``), is a critical point of the
    ReLU network on the piece where it is linear: same Hessian, same zero modes."""
    lin = spec_(L=3, bias="free", lambda_H1=5e-3, lambda_W=5e-3)
    p = free_bias_dnc(lin)
    # K - 1 directions of the DNC problem, each worth L_DNC / K
    L_dnc = float(ufm.deep.dnc_loss(lin.replace(bias="none")))
    assert float(ufm.loss(lin, p)) == pytest.approx((K - 1) / K * L_dnc, rel=1e-12)
    for i in range(1, lin.L):
        Z = ufm.deep.deep_features(lin, p).Z[i - 1]
        v = 1.0 - jnp.min(Z, axis=1)
        b = list(p.biases)
        b[i - 1], b[i] = b[i - 1] + v, b[i] - p.Ws[i] @ v
        p = p._replace(biases=tuple(b))
    assert all(float(jnp.min(Z)) >= 1.0 - 1e-9 for Z in ufm.deep.deep_features(lin, p).Z[:-1])
    recs = [ufm.classify(s, p, method="dense") for s in (lin, lin.replace(activation="relu"))]
    for rec in recs:
        assert float(rec.grad_norm) < 1e-10
        assert ufm.CLASS_NAMES[int(rec.code)] == "local_min"
        for k in ("n_neg", "n_zero", "zero_modes_predicted"):
            assert int(getattr(rec, k)) == int(getattr(recs[0], k)), k
    # with a free bias the fit has rank K - 1 = 2 (every W_l too): hidden rotations z(4, 2) per
    # layer, translations of the hidden biases (2 x 4); the class rotations fixing 1 (O(2)) are
    # absorbed (their stabiliser is the diagonal O(2) of the equal singular values)
    assert int(recs[0].rank) == K - 1
    assert int(recs[0].zero_modes_predicted) == 3 * z(WIDTH, K - 1) + 2 * WIDTH


# -- Newton on deep specs --------------------------------------------------------------------------
def test_structured_newton_matches_dense_and_polishes_a_saddle(tanh_points):
    spec, batch = tanh_points
    rnd = ufm.init_params(spec, KEY)
    both = jax.jit(
        lambda p: [ufm.hessian.newton_step(spec, p, method=m) for m in ("structured", "dense")]
    )
    steps = both(rnd)
    flat = [jax.flatten_util.ravel_pytree(s)[0] for s in steps]
    np.testing.assert_allclose(
        flat[0], flat[1], rtol=1e-8, atol=1e-10 * float(jnp.abs(flat[1]).max())
    )
    saddle = _take(batch, 3)
    noise = ufm.init_params(spec, jax.random.key(5), scale=1e-4)
    p = jax.tree_util.tree_map(lambda a, b: a + b, saddle, noise)
    step = jax.jit(lambda p: ufm.hessian.newton_step(spec, p, method="structured"))
    for _ in range(8):
        p = jax.tree_util.tree_map(lambda a, b: a + b, p, step(p))
    assert float(ufm.grad_norm(spec, p)) < 1e-10
    assert abs(float(ufm.loss(spec, p) - ufm.loss(spec, saddle))) < 1e-9


def test_deep_zero_mode_count_is_rotation_invariant():
    """The orbit dimension is a property of the orbit: the same at a rotated copy."""
    spec = spec_(L=3, lambda_H1=5e-3, lambda_W=5e-3)
    p = pattern_point(spec, "ab0")
    Q = jnp.linalg.qr(jax.random.normal(KEY, (WIDTH, WIDTH)))[0]
    rotated = p._replace(Ws=(Q @ p.Ws[0],) + (p.Ws[1] @ Q.T,) + p.Ws[2:])
    count = jax.jit(jax.vmap(ufm.deep.deep_zero_mode_count, (None, 0)))
    counts = [int(c) for c in count(spec, _stack(p, rotated))]
    assert counts == [pattern_formula(spec, "ab0")] * 2
