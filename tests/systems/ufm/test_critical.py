"""Critical-point finders, deduplication and the classifier (theory.md section 3).

Checked against: the closed-form optima and their symmetry zero-mode count, the curvature bound of
the negative-curvature construction, the closed-form spectrum at the origin, the block-arrow and
Lanczos routines against dense ``eigh``, rotated / permuted copies of points, and gradient descent
in the full space against its rank-restricted embedding. Float64 throughout (tests/conftest.py).
Most tests share one spec (K=3, n=2, d=3, CE) so that compiled functions are reused.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ufm

LW, LH = 0.02, 0.03  # unequal on purpose: balanced and optimal curvature bounds differ
SPEC = ufm.UFMSpec(K=3, n=2, d=3, loss="ce", lambda_W=LW, lambda_H=LH)
KEY = jax.random.key(0)


def _stack(*ps):
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *ps)


def _cat(*ps):
    return jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs), *ps)


def _rotate(params, key):
    """``W Q``, ``Q^T H`` for an independent Haar orthogonal ``Q`` per point (batch)."""
    num, _, d = params.W.shape
    keys = jax.random.split(key, num)
    Q = jax.vmap(lambda k: jnp.linalg.qr(jax.random.normal(k, (d, d)))[0])(keys)
    return ufm.UFMParams(params.W @ Q, jnp.swapaxes(Q, 1, 2) @ params.H, params.b)


@pytest.fixture(scope="module")
def minima():
    return ufm.systems.ufm.find_minima(SPEC, 4, KEY, max_steps=3000)


@pytest.fixture(scope="module")
def saddles():
    return ufm.systems.ufm.planted_saddles(SPEC, KEY, seeds_per_dim=2)


# -- classifier at known points ---------------------------------------------------------------


@pytest.mark.parametrize(
    "loss, bias, lb, d, scale",
    [
        ("ce", "none", 0.0, 3, 1),
        ("ce", "free", 0.0, 5, 1),
        ("ce", "free", 0.0, 3, 40),
        ("mse", "none", 0.0, 3, 1),
        ("mse", "regularized", 0.5, 5, 1),
    ],
)
def test_closed_form_optima_are_global_minima(loss, bias, lb, d, scale):
    spec = ufm.UFMSpec(
        K=3, n=2, d=d, loss=loss, bias=bias, lambda_W=scale * LW, lambda_H=scale * LH, lambda_b=lb
    )
    opt = ufm.optimum(spec)
    p = opt.params
    moved = _rotate(_stack(p), jax.random.key(1))
    if spec.loss == "ce" and spec.bias == "free":  # b -> b + c 1 is a symmetry
        moved = moved._replace(b=moved.b + 0.7)
    rows = ufm.classify_batch(spec, _cat(_stack(p), moved), method="dense")
    predicted = ufm.zero_mode_count(spec)  # from the closed-form rank, not the numerical one
    assert rows["class"].tolist() == ["global_min"] * 2
    assert (rows["n_neg"] == 0).all() and (rows["n_zero"] == predicted).all()
    assert (rows["zero_modes_predicted"] == predicted).all() and (rows["rank"] == opt.rank).all()
    assert (rows["n_neg"] + rows["n_zero"] + rows["n_pos"] == spec.num_params).all()
    np.testing.assert_allclose(rows["f_gap"], 0.0, atol=1e-12)
    assert (rows["certificate_gap"] <= 1e-12).all()
    # a clean spectral gap around the tolerance: zero modes far below it, curvature far above
    assert (rows["zero_max"] < 1e-3 * rows["zero_tol"]).all()
    assert (rows["lambda_pos_min"] > 1e3 * rows["zero_tol"]).all()
    np.testing.assert_allclose(rows["zero_tol"], 1e-8 * rows["hess_norm"], rtol=1e-12)
    np.testing.assert_allclose(
        rows["hess_norm"], np.maximum(-rows["lambda_min"], rows["lambda_max"])
    )


def test_classify_vmap_and_batch_agree(saddles):
    rows = ufm.classify_batch(SPEC, saddles.params)
    rec = jax.vmap(lambda p: ufm.classify(SPEC, p))(saddles.params)
    assert rows["class_code"].tolist() == np.asarray(rec.code).tolist()
    assert rec.code.dtype == jnp.int8 and rec.lambda_min.dtype == jnp.float64
    for k in ("lambda_min", "loss", "certificate_gap", "zero_tol"):
        np.testing.assert_allclose(rows[k], getattr(rec, k), rtol=1e-12)
    assert ufm.CLASS_NAMES[ufm.PointClass.STRICT_SADDLE] == "strict_saddle"


def test_classify_batch_padding_and_batch_sizes_agree(saddles):
    """3 points are padded to 4 (skipped by lax.cond one at a time, computed and dropped in a
    batch): rows equal for batch_size 1 (the CPU default), 4 and single-point classify."""
    three = jax.tree_util.tree_map(lambda x: x[:3], saddles.params)
    one = ufm.classify_batch(SPEC, three)
    four = ufm.classify_batch(SPEC, three, batch_size=4)
    assert len(one["class"]) == 3
    for k in ("class_code", "n_neg", "n_zero", "lambda_min"):
        np.testing.assert_array_equal(one[k], four[k], err_msg=k)
    # the loss is a sum that XLA may order differently under vmap: equal to rounding
    np.testing.assert_allclose(one["f_gap"], four["f_gap"], rtol=1e-14, atol=1e-16)
    for i in range(3):
        rec = ufm.classify(SPEC, jax.tree_util.tree_map(lambda x: x[i], three))
        assert int(rec.code) == one["class_code"][i]
        np.testing.assert_allclose(float(rec.lambda_min), one["lambda_min"][i], rtol=1e-12)


def test_planted_saddles_are_strict_saddles_meeting_the_curvature_bound(saddles):
    spec = SPEC
    assert set(saddles.source) == {"planted"}
    assert sorted(set(saddles.dim.tolist())) == [0] + list(ufm.saddle_dims(spec))
    assert (saddles.grad_norm <= 1e-10).all() and saddles.converged.all()
    rows = ufm.classify_batch(spec, saddles.params)
    assert (rows["class"] == "strict_saddle").all()
    assert (rows["n_neg"] >= 1).all() and (rows["f_gap"] > 1e-3).all()
    assert (rows["certificate_gap"] > 0).all()
    np.testing.assert_array_equal(rows["rank"], saddles.dim)  # padded d'-optima have rank d'
    for i in range(saddles.num_points):
        p = jax.tree_util.tree_map(lambda x: x[i], saddles.params)
        bal = ufm.negative_curvature_direction(spec, p)
        opt = ufm.negative_curvature_direction(spec, p, mix="optimal")
        assert bool(bal.found) and bool(opt.found)
        np.testing.assert_allclose(rows["curvature_bound"][i], bal.bound, rtol=1e-12)
        assert rows["lambda_min"][i] <= float(opt.bound) + 1e-12 <= float(bal.bound) + 2e-12
    # the origin: Hessian [[lW I, G-coupling], [., lH I]] (+ PSD bias block), closed-form lambda_min
    o = np.flatnonzero(saddles.dim == 0)[0]
    s1 = rows["sigma_1"][o]
    expected = 0.5 * (LW + LH) - np.sqrt(0.25 * (LW - LH) ** 2 + s1**2)
    np.testing.assert_allclose(rows["lambda_min"][o], expected, rtol=1e-12)
    assert abs(rows["loss"][o] - np.log(3)) < 1e-14


def test_minima_from_random_starts_are_global(minima):
    assert set(minima.source) == {"random"} and minima.converged.all()
    rows = ufm.classify_batch(SPEC, minima.params)
    assert (rows["class"] == "global_min").all()
    assert (np.abs(rows["f_gap"]) < 1e-12).all()
    assert (rows["n_zero"] == ufm.zero_mode_count(SPEC, SPEC.K - 1)).all()


def test_block_arrow_and_lanczos_agree_with_dense(minima, saddles):
    pts = ufm.landscape.concat_points(minima, saddles)
    dense = ufm.classify_batch(SPEC, pts.params, method="dense")
    ba = ufm.classify_batch(SPEC, pts.params, method="block_arrow")
    lz = ufm.classify_batch(SPEC, pts.params, method="lanczos")  # p = 27: full Krylov space
    assert dense["class"].tolist() == ba["class"].tolist() == lz["class"].tolist()
    for k in ("n_neg", "n_zero", "n_pos"):
        np.testing.assert_array_equal(dense[k], ba[k])
        assert (lz[k] == -1).all()
    atol = 1e-10 * dense["hess_norm"].max()
    np.testing.assert_allclose(ba["lambda_min"], dense["lambda_min"], rtol=0, atol=atol)
    np.testing.assert_allclose(lz["lambda_min"], dense["lambda_min"], rtol=0, atol=atol)


def test_not_critical_and_tolerance_formula():
    opt = ufm.optimum(SPEC).params
    rand = ufm.init_params(SPEC, jax.random.key(3), scale=0.5)
    nudged = jax.tree_util.tree_map(lambda x: x + 1e-4, opt)
    rows = ufm.classify_batch(SPEC, _stack(rand, nudged))
    assert rows["class"].tolist() == ["not_critical"] * 2
    assert (rows["grad_norm"] > rows["grad_tol"]).all() and (rows["grad_tol"] == 1e-8).all()
    # round-off, and the symmetry modes' reach 2 ||grad|| / orbit_scale (x 5): see classify.py
    orbit = np.maximum(1.0, 1.0 / rows["orbit_scale"])
    expected = np.maximum(1e-8 * rows["hess_norm"], 10 * rows["grad_norm"] * orbit)
    np.testing.assert_allclose(rows["zero_tol"], expected, rtol=1e-12)
    np.testing.assert_array_equal(rows["zero_tol_upper"], rows["zero_tol"])
    lax = ufm.classify_batch(SPEC, _stack(nudged), grad_tol=1.0)  # tolerances scale with grad
    assert lax["grad_tol"][0] == 1.0 and lax["class"][0] == "global_min"


@pytest.mark.parametrize(
    "factor, expected", [(1.0, "global_min"), (1.01, "global_min"), (0.99, "strict_saddle")]
)
def test_origin_at_the_collapse_threshold(factor, expected):
    """CE, lW = lH = lam: the origin's Hessian has eigenvalues lam -+ sigma_i(G) (multiplicity d
    each) with sigma_i = 1/(K sqrt(n)) on the K-1 class directions. At s = sqrt(n) lam = 1/K the
    origin is a global minimum (certificate gap 0) with (K-1) d extra zero modes: a degenerate
    global minimum, not a counterexample to the strict-saddle property (no warning); n_zero
    records the extra modes."""
    K, n, d = SPEC.K, SPEC.n, SPEC.d
    lam = factor / (K * np.sqrt(n))
    spec = SPEC.replace(lambda_W=lam, lambda_H=lam)
    origin = ufm.UFMParams(jnp.zeros((1, K, d)), jnp.zeros((1, d, spec.N)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = ufm.classify_batch(spec, origin)
    assert rows["class"][0] == expected and rows["rank"][0] == 0
    assert rows["zero_modes_predicted"][0] == 0
    np.testing.assert_allclose(rows["lambda_min"][0], lam - 1 / (K * np.sqrt(n)), atol=1e-15)
    assert not [w for w in caught if issubclass(w.category, ufm.CounterexampleWarning)]
    if factor == 1.0:
        assert rows["n_zero"][0] == (K - 1) * d and rows["n_neg"][0] == 0
    else:
        assert rows["n_zero"][0] == 0
        assert rows["n_neg"][0] == (0 if factor > 1 else (K - 1) * d)


def test_inflated_zero_tolerance_is_reported_loudly(saddles):
    """Counting curvature as zero (huge zero_rtol) gives extra zero modes. At the certified
    optimum that changes nothing (a certified global minimum); at a planted saddle (not
    certified) it hides the negative curvature and the extra modes are firm: DEGENERATE +
    warning."""
    opt = ufm.optimum(SPEC).params
    rows = ufm.classify_batch(SPEC, _stack(opt), zero_rtol=0.5)
    assert rows["class"][0] == "global_min"
    assert rows["n_zero"][0] > rows["zero_modes_predicted"][0]
    saddle = jax.tree_util.tree_map(lambda x: x[:1], saddles.params)
    with pytest.warns(ufm.CounterexampleWarning, match="1 critical point"):
        rows = ufm.classify_batch(SPEC, saddle, zero_rtol=10.0)
    assert rows["class"][0] == "degenerate"
    assert rows["n_zero"][0] > rows["zero_modes_predicted"][0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ufm.classify_batch(SPEC, saddle, zero_rtol=10.0, warn=False)


def test_local_min_below_the_closed_form_dimension(saddles):
    """d = 1 < K - 1: no closed form, the certificate fails at the minimum: LOCAL_MIN, not a
    counterexample; its value is the planted d' = 1 saddle's value at d = 3."""
    spec = SPEC.replace(d=1)
    pts = ufm.systems.ufm.find_minima(
        spec, 2, KEY, max_steps=3000
    )  # shapes of the planted d' = 1 runs
    with warnings.catch_warnings():
        warnings.simplefilter("error", ufm.CounterexampleWarning)
        rows = ufm.classify_batch(spec, pts.params)
    assert (rows["class"] == "local_min").all() and np.isnan(rows["f_star"]).all()
    assert (rows["certificate_gap"] > 0).all()
    planted = saddles.loss[saddles.dim == 1]
    np.testing.assert_allclose(rows["loss"], planted.min(), rtol=1e-10)


def test_errors_name_the_field():
    opt = _stack(ufm.optimum(SPEC).params)
    with pytest.raises(ValueError, match="method"):
        ufm.classify_batch(SPEC, opt, method="qr")
    with pytest.raises(ValueError, match="zero_gtol"):
        ufm.classify_batch(SPEC, opt, zero_gtol=-1.0)
    with pytest.raises(ValueError, match="params"):
        ufm.classify_batch(SPEC.replace(d=4), opt)
    with pytest.raises(ValueError, match="rank"):
        ufm.systems.ufm.rank_restricted_points(SPEC, 4, 2, KEY)
    with pytest.raises(ValueError, match="scales"):
        ufm.systems.ufm.find_critical_points(SPEC, 2, KEY, scales=(0.0,))


# -- deduplication ------------------------------------------------------------------------------


def test_deduplicate_merges_rotated_copies_and_keeps_distinct_points_apart(minima, saddles):
    pts = ufm.landscape.concat_points(minima, saddles)
    n = pts.num_points
    rotated = _rotate(pts.params, jax.random.key(7))
    perm = np.array([1, 2, 0])  # relabel classes: W rows, class blocks of H
    cols = np.concatenate([np.arange(SPEC.n) + SPEC.n * k for k in perm])
    permuted = ufm.UFMParams(pts.params.W[:, perm], pts.params.H[:, :, cols], None)
    nudged = jax.tree_util.tree_map(lambda x: x + 1e-3, pts.params)
    res = ufm.landscape.deduplicate(SPEC, _cat(pts.params, rotated, permuted, nudged))
    lab = res.labels
    np.testing.assert_array_equal(lab[:n], lab[n : 2 * n])  # a rotation is the same point
    assert len(set(lab[: minima.num_points])) == 1  # all minima: one orbit
    assert res.counts[lab[0]] >= 2 * minima.num_points
    assert not set(lab[3 * n :]) & set(lab[: 3 * n])  # 1e-3 perturbations are new points
    losses = np.asarray(pts.loss)
    for i in range(n):
        for j in range(n):
            if abs(losses[i] - losses[j]) > 1e-6:
                assert lab[i] != lab[j]
    d1 = np.flatnonzero(pts.dim == 1)  # rank-1 saddles: class relabelling changes the point
    assert all(lab[2 * n + i] != lab[i] for i in d1)
    assert res.counts.sum() == 4 * n and res.index.size == res.counts.size
    np.testing.assert_array_equal(res.labels[res.index], np.arange(res.index.size))


# -- finders -----------------------------------------------------------------------------------


def test_generic_finder_finds_saddles():
    pts = ufm.systems.ufm.find_critical_points(SPEC, 4, KEY, drop_failed=False)
    assert pts.num_points == 4 and set(pts.source) == {"newton"}
    np.testing.assert_array_equal(pts.scale, [0.3, 1.0, 3.0, 0.3])
    conv = pts.select(pts.converged)
    assert conv.num_points >= 1 and (conv.grad_norm <= 1e-10).all()
    dropped = ufm.systems.ufm.find_critical_points(
        SPEC, 4, KEY
    )  # drop_failed=True: the converged subset
    np.testing.assert_array_equal(dropped.seed, conv.seed)
    assert (dropped.grad_norm <= 1e-9).all()
    rows = ufm.classify_batch(SPEC, dropped.params)
    assert (rows["class"] == "strict_saddle").sum() >= 1
    assert not np.isin(rows["class"], ["degenerate", "spurious_min"]).any()


def test_gradnorm_spec_and_finder():
    p = ufm.init_params(SPEC, jax.random.key(5), scale=0.5)
    gn = ufm.landscape.GradNormSpec(SPEC)
    np.testing.assert_allclose(ufm.loss(gn, p), 0.5 * ufm.grad_norm(SPEC, p) ** 2, rtol=1e-12)
    pts = ufm.systems.ufm.find_critical_points(
        SPEC, 4, KEY, method="gradnorm", gradnorm_steps=300, drop_failed=False
    )
    assert set(pts.source) == {"gradnorm"} and pts.converged.any()
    assert (pts.grad_norm[pts.converged] <= 1e-10).all()


def test_rank_restricted_points_stay_in_their_subspace():
    r = 1  # < K - 1: strict saddles (r = K - 1 would give the global minimum)
    pts, U = ufm.systems.ufm.rank_restricted_points(
        SPEC, r, 2, jax.random.key(r), return_bases=True
    )
    assert (pts.grad_norm <= 1e-10).all() and (pts.dim == r).all()
    assert U.shape == (2, SPEC.d, r)
    np.testing.assert_allclose(
        np.swapaxes(U, 1, 2) @ U, np.broadcast_to(np.eye(r), (2, r, r)), atol=1e-14
    )
    P = np.eye(SPEC.d) - np.einsum("sda,sea->sde", U, U)  # projector off the subspace
    W, H = np.asarray(pts.params.W), np.asarray(pts.params.H)
    assert np.abs(W @ P).max() < 1e-12 and np.abs(P @ H).max() < 1e-12
    rows = ufm.classify_batch(SPEC, pts.params)
    assert (rows["rank"] == r).all() and (rows["class"] == "strict_saddle").all()


def test_full_space_gd_from_a_rank_r_start_is_the_embedded_small_gd():
    """The invariance the rank-restricted finder relies on (on a horizon where round-off does not
    yet leak out of the subspace)."""
    r, steps = 1, 200
    small = SPEC.replace(d=r)
    p0 = ufm.init_batch(small, jax.random.key(11), 2)
    U = jnp.linalg.qr(jax.random.normal(jax.random.key(12), (SPEC.d, r)))[0]
    embed = lambda p: ufm.UFMParams(p.W @ U.T, U @ p.H, p.b)  # noqa: E731
    kw = dict(optimizer=ufm.gd(0.5), max_steps=steps, tol=0.0, chunk=steps)
    a = ufm.optimize(small, p0, **kw).params
    b = ufm.optimize(SPEC, embed(p0), **kw).params
    P = np.eye(SPEC.d) - np.asarray(U @ U.T)
    leak0 = max(np.abs(embed(p0).W @ P).max(), np.abs(P @ embed(p0).H).max())
    leak = max(np.abs(b.W @ P).max(), np.abs(P @ b.H).max())
    # the same trajectory up to round-off ...
    np.testing.assert_allclose(b.W, embed(a).W, atol=1e-9)
    np.testing.assert_allclose(b.H, embed(a).H, atol=1e-9)
    # ... but the round-off component off the subspace grows along its negative curvature
    # (here ~1e-17 -> ~1e-10 in 200 steps): why the finder runs in subspace coordinates
    assert leak0 < 1e-15 and 1e3 * leak0 < leak < 1e-9


def test_landscape_points_table():
    rows = ufm.systems.ufm.landscape_points(
        SPEC,
        KEY,
        4,
        saddle_seeds_per_dim=2,
        generic_seeds=3,
        rank_restricted=(1,),
        rank_seeds=2,
        max_steps=3000,
    )
    m = len(rows["source"])
    assert all(len(v) == m for v in rows.values())
    src = rows["source"]
    assert set(src) == {"random", "planted", "newton", "rank_restricted"}
    assert (src == "newton").sum() == 3  # failed generic starts are kept as rows
    assert (rows["class"][src == "random"] == "global_min").all()
    assert (rows["class"][np.isin(src, ["planted", "rank_restricted"])] == "strict_saddle").all()
    conv = rows["grad_norm"] <= 1e-10
    assert (rows["class"][~conv & (src == "newton")] == "not_critical").all()
    assert (rows["multiplicity"] >= 1).all() and (rows["find_time"] > 0).all()
    # rank-1 restricted points are planted d' = 1 saddles up to rotation (or class relabelling)
    planted_1 = rows["loss"][(src == "planted") & (rows["dim"] == 1)]
    assert np.isclose(rows["loss"][src == "rank_restricted"][:, None], planted_1[None]).all()
    summary = {s["source"]: s for s in ufm.systems.ufm.summarize_points(rows)}
    assert set(summary) == set(src)
    for name, s in summary.items():
        sel = src == name
        assert s["points"] == sel.sum() and s["critical"] == (sel & conv).sum()
        assert sum(s[c] for c in ufm.CLASS_NAMES) == s["points"]
        assert s["unique"] == np.unique(rows["unique_id"][sel & conv]).size
    assert summary["planted"]["strict_saddle"] == summary["planted"]["critical"]
    assert summary["planted"]["saddle_lambda_max"] < -1e-3  # strict: bounded away from 0
    assert abs(summary["random"]["minima_lambda_min"]) < 1e-10
