"""Imbalanced classes in the UFM: the spec, the objective, metrics and Hessians over unequal
classes, and the closed forms of docs/theory.md section 10 against the convex program and the
optimiser."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ufm
from ufm.systems.ufm import (
    class_mean_gram,
    fit_term,
    imbalanced_optimum,
    labels,
    minority_threshold,
    solve_convex,
)
from ufm.systems.ufm import metrics as ufm_metrics


def test_spec_class_sizes_and_errors():
    spec = ufm.UFMSpec(K=3, n=(5, 3, 1), d=3)
    assert spec.class_sizes == (5, 3, 1) and spec.N == 9 and not spec.balanced
    assert spec.num_params == 3 * 3 + 3 * 9
    bal = ufm.UFMSpec(K=3, n=[4, 4, 4], d=3)
    assert bal.n == 4 and bal.balanced and bal.class_sizes == (4, 4, 4)
    assert bal.as_dict() == ufm.UFMSpec(K=3, n=4, d=3).as_dict()  # config hashes unchanged
    assert "f_convex" not in bal.as_dict()
    for bad, word in [((5, 3), "K=3"), ((5, 0, 1), "positive"), ((5, 2.5, 1), "integer")]:
        with pytest.raises(ufm.SpecError, match="^n must") as err:
            ufm.UFMSpec(K=3, n=bad, d=3)
        assert word in str(err.value) and len(str(err.value).splitlines()) == 1
    with pytest.raises(ufm.SpecError, match="balanced"):
        _ = spec.s
    with pytest.raises(ufm.SpecError, match="balanced"):
        ufm.optimum(spec)
    with pytest.raises(ufm.SpecError, match="collapse_spectrum"):
        ufm.systems.ufm.collapse_spectrum(spec.replace(loss="mse"))
    with pytest.raises(ufm.SpecError, match="zero_mode_count"):
        ufm.zero_mode_count(spec)  # needs the rank (saddle_dims takes it from the convex program)
    with pytest.raises(ufm.SpecError, match="no closed form"):
        ufm.optimal_value(spec)  # CE with class sizes: the convex program instead
    with pytest.raises(ufm.SpecError, match="f_convex"):
        spec.replace(f_convex=-1.0)
    assert labels(3, (2, 1, 3)).tolist() == [0, 0, 1, 2, 2, 2]


@pytest.mark.parametrize("loss,bias", [("ce", "free"), ("mse", "regularized")])
def test_imbalanced_objective_against_numpy(loss, bias):
    sizes = (4, 2, 1)
    lb = 0.05 if bias == "regularized" else 0.0
    spec = ufm.UFMSpec(
        K=3, n=sizes, d=2, loss=loss, bias=bias, lambda_W=0.01, lambda_H=0.02, lambda_b=lb
    )
    p = ufm.init_params(spec, jax.random.key(3), scale=0.7)
    p = p._replace(b=jnp.asarray([0.3, -0.1, 0.2]))
    W, H, b = (np.asarray(x) for x in p)
    y = np.repeat(np.arange(3), sizes)
    fit = 0.0
    for i in range(spec.N):  # per-sample loop, mean over all N samples
        z = W @ H[:, i] + b
        if loss == "ce":
            fit += np.log(np.sum(np.exp(z))) - z[y[i]]
        else:
            fit += 0.5 * np.sum((z - np.eye(3)[y[i]]) ** 2)
    ref = fit / spec.N + 0.005 * np.sum(W**2) + 0.01 * np.sum(H**2) + 0.5 * lb * np.sum(b**2)
    assert float(ufm.loss(spec, p)) == pytest.approx(ref, rel=1e-13)
    # the labelled (gather) CE path equals the balanced reshape path on balanced sizes
    Z = jax.random.normal(jax.random.key(1), (3, 12))
    assert float(fit_term(Z, loss, (4, 4, 4))) == pytest.approx(
        float(fit_term(Z, loss, 4)), rel=1e-14
    )


def test_metrics_labelled_path_equals_class_major_and_vmaps():
    spec = ufm.UFMSpec(K=3, n=4, d=5, loss="ce", bias="free")
    p = ufm.init_params(spec, jax.random.key(1))
    fast = ufm.nc_metrics(spec, p)
    slow_spec = ufm.UFMSpec(K=3, n=(4, 4, 5), d=5, loss="ce", bias="free")
    object.__setattr__(slow_spec, "n", (4, 4, 4))  # force the labelled path on balanced classes
    slow = ufm_metrics.ufm_nc_metrics(slow_spec, p)
    for k in ufm.NC_METRIC_NAMES:
        np.testing.assert_allclose(
            float(slow[k]), float(fast[k]), rtol=1e-12, atol=1e-14, err_msg=k
        )
    imb = ufm.UFMSpec(K=3, n=(6, 2, 1), d=4)
    ps = ufm.init_batch(imb, jax.random.key(0), num_seeds=3)
    vm = jax.vmap(lambda q: ufm.nc_metrics(imb, q))(ps)
    one = ufm.nc_metrics(imb, jax.tree_util.tree_map(lambda x: x[1], ps))
    for k in ufm.NC_METRIC_NAMES:
        np.testing.assert_allclose(float(vm[k][1]), float(one[k]), rtol=1e-12, err_msg=k)
    # class means over unequal classes: mu_G is the mean of all N samples
    H = np.asarray(ps.H[1])
    y = labels(3, imb.n)
    M = np.stack([H[:, y == k].mean(1) for k in range(3)], 1) - H.mean(1, keepdims=True)
    norms = np.linalg.norm(M, axis=0)
    assert float(one["nc2_equinorm_M"]) == pytest.approx(norms.std() / norms.mean(), rel=1e-12)


@pytest.mark.parametrize("loss,bias", [("ce", "free")])
def test_hessians_agree_on_imbalanced_points(loss, bias):
    spec = ufm.UFMSpec(K=3, n=(4, 2, 1), d=3, loss=loss, bias=bias, lambda_W=0.01, lambda_H=0.02)
    p = ufm.init_params(spec, jax.random.key(5), scale=0.8)
    ev = np.sort(np.asarray(ufm.hessian.hessian_spectrum_dense(spec, p)))
    flat = np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(p)])
    n_par = flat.size
    # an independent Hessian: central differences of the autodiff gradient, numpy eigvalsh
    unravel = jax.flatten_util.ravel_pytree(p)[1]
    grad = jax.jit(jax.grad(lambda v: ufm.loss(spec, unravel(v))))
    v0, h = jnp.asarray(flat), 1e-5
    Hfd = np.stack(
        [
            (np.asarray(grad(v0 + h * e)) - np.asarray(grad(v0 - h * e))) / (2 * h)
            for e in np.eye(n_par)
        ]
    )
    np.testing.assert_allclose(ev, np.linalg.eigvalsh(0.5 * (Hfd + Hfd.T)), atol=1e-7)
    ba = ufm.hessian.block_arrow_spectrum(spec, p)
    assert float(ba.lambda_min) == pytest.approx(ev[0], rel=1e-9)
    assert int(ba.n_neg) == int(np.sum(ev < -1e-8 * abs(ev).max()))
    lz = ufm.hessian.lanczos_extremes(spec, p, jax.random.key(0), num_matvecs=n_par)
    assert float(lz.lambda_min) == pytest.approx(ev[0], rel=1e-9)
    assert float(lz.lambda_max) == pytest.approx(ev[-1], rel=1e-9)


@pytest.mark.parametrize("bias", ["none", "free"])
def test_mse_closed_form_matches_convex_program(bias):
    """f* of section 10 at random class sizes (K = 4) against the Fenchel-certified convex
    program: every closed form lies in [lower_bound, value] and the gap is tiny."""
    rng = np.random.default_rng(7)
    sizes = rng.integers(1, 30, size=(6, 4))
    lw, lh = 10.0 ** rng.uniform(-3, -1.3, 6), 10.0 ** rng.uniform(-3, -1.3, 6)
    sol = solve_convex(4, sizes, loss="mse", bias=bias, lambda_W=lw, lambda_H=lh, iterations=4000)
    for i in range(6):
        spec = ufm.UFMSpec(
            K=4, n=tuple(sizes[i]), d=4, loss="mse", bias=bias, lambda_W=lw[i], lambda_H=lh[i]
        )
        f = (
            ufm.optimal_value(spec)
            if spec.balanced
            else ufm.systems.ufm.imbalanced_optimal_value(spec)
        )
        assert float(sol.gap[i]) < 1e-10
        assert float(sol.lower_bound[i]) - 1e-12 <= f <= float(sol.value[i]) + 1e-12
        if not spec.balanced:
            opt = imbalanced_optimum(spec)
            assert float(ufm.loss(spec, opt.params)) == pytest.approx(f, abs=1e-14)
            assert float(ufm.grad_norm(spec, opt.params)) < 1e-13
            # class-mean Gram from the convex minimiser = the closed-form minimiser's
            G = class_mean_gram(sol.M[i], sizes[i], lw[i], lh[i])
            Hbar = opt.params.H[:, np.cumsum(sizes[i]) - 1]
            np.testing.assert_allclose(G, np.asarray(Hbar.T @ Hbar), atol=1e-7)


def test_balanced_limit_and_traced_lambdas():
    for bias in ("none", "free"):
        spec = ufm.UFMSpec(K=4, n=5, d=4, loss="mse", bias=bias, lambda_W=3e-3, lambda_H=7e-3)
        ref = ufm.optimal_value(spec)  # balanced closed form (section 2)
        imb = ufm.systems.ufm.imbalanced_optimal_value(spec)  # section 10 at n_k = 5
        assert imb == pytest.approx(ref, rel=1e-13)
    spec = ufm.UFMSpec(K=3, n=(9, 4, 1), d=2, loss="mse", lambda_W=0.05, lambda_H=0.05)
    lams = jnp.asarray([0.01, 0.05, 0.2])
    traced = jax.vmap(lambda lw: ufm.optimal_value(spec.replace(lambda_W=lw)))(lams)
    for lw, t in zip(lams.tolist(), np.asarray(traced)):
        try:
            want = ufm.optimal_value(spec.replace(lambda_W=lw))
        except ValueError:  # d = 2 below the minimiser's rank
            want = np.nan
        np.testing.assert_allclose(t, want, rtol=1e-13)
    assert np.isnan(traced[0]) and np.isfinite(traced[2])  # rank 3 > d, then rank 2


@pytest.mark.parametrize("loss,bias", [("mse", "none"), ("ce", "none")])
def test_optimiser_end_points_meet_closed_form_and_convex_bound(loss, bias):
    """Random starts, gradient descent and Newton polishing: every end point is within 1e-9 of
    the closed form (MSE) and certified by the convex program's lower bound (all)."""
    sizes, lw, lh = (12, 6, 3, 1), 4e-3, 8e-3
    spec = ufm.UFMSpec(K=4, n=sizes, d=4, loss=loss, bias=bias, lambda_W=lw, lambda_H=lh)
    p0 = ufm.init_batch(spec, jax.random.key(11), num_seeds=8)
    res = ufm.optimize(spec, p0, ufm.OptimizerSettings(learning_rate=1.0, max_steps=3000, tol=1e-8))
    pol = ufm.polish(spec, res.params)
    f = np.asarray(jax.vmap(lambda q: ufm.loss(spec, q))(pol.params))
    sol = solve_convex(4, sizes, loss=loss, bias=bias, lambda_W=lw, lambda_H=lh, iterations=20000)
    assert float(sol.gap) < 1e-7
    assert np.all(f - float(sol.lower_bound) <= 1e-7), f - float(sol.lower_bound)
    assert np.all(f >= float(sol.lower_bound) - 1e-12)
    if loss == "mse":
        np.testing.assert_allclose(f, ufm.optimal_value(spec), atol=1e-9)


def test_minority_collapse_threshold_mse():
    """Class k's mean vanishes exactly when n_k <= lambda_W lambda_H N^2 (no bias), and the
    two-group threshold ratio R* separates collapsed from non-collapsed minorities."""
    lw = lh = 0.02
    for sizes in [(40, 40, 3, 3), (40, 40, 6, 6), (20, 9, 5, 2)]:
        spec = ufm.UFMSpec(K=4, n=sizes, d=4, loss="mse", lambda_W=lw, lambda_H=lh)
        opt = imbalanced_optimum(spec)
        collapsed = np.asarray(sizes) <= lw * lh * spec.N**2
        np.testing.assert_array_equal(opt.class_mean_norms < 1e-12, collapsed)
        assert opt.rank == int(np.sum(~collapsed))
    R = minority_threshold(40, 2, 2, lw, lh)
    for r, want in [(R * 0.97, False), (R * 1.03, True)]:
        nB = 40 / r
        N = 80 + 2 * nB
        assert (nB <= lw * lh * N**2) == want
    # free bias, two minority classes: their means merge (angle 0) instead of vanishing
    spec = ufm.UFMSpec(
        K=4, n=(40, 40, 2, 2), d=4, loss="mse", bias="free", lambda_W=lw, lambda_H=lh
    )
    Hbar = np.asarray(imbalanced_optimum(spec).params.H[:, [0, 40, 80, 82]])
    assert np.linalg.norm(Hbar[:, 2] - Hbar[:, 3]) < 1e-12 < np.linalg.norm(Hbar[:, 2])


def test_convex_certificate_in_classification():
    """CE with class sizes has no closed form: with the convex program's value attached
    (with_convex_reference, computed once on the host) the classifier certifies the optimiser's
    minima as global by value, and a planted saddle is not."""
    from ufm.systems.ufm import pad_params, with_convex_reference

    spec0 = ufm.UFMSpec(K=4, n=(6, 6, 2, 1), d=4, loss="ce", lambda_W=5e-3, lambda_H=5e-3)
    spec = with_convex_reference(spec0)
    assert spec.f_convex is not None and spec0.f_convex is None
    assert spec.replace(lambda_W=1e-2).f_convex is None  # a stale reference is never kept
    assert spec.replace(dtype="float32").f_convex == spec.f_convex
    p0 = ufm.init_batch(spec, jax.random.key(2), num_seeds=4)
    settings = ufm.OptimizerSettings(learning_rate=1.0, max_steps=3000, tol=1e-8)
    analyses = (("closed_form", ()), ("hessian", (("method", "dense"),)))
    cols = ufm.run_points(spec, p0, optimizer=settings, analyses=analyses).columns
    assert list(cols["class"]) == ["global_min"] * 4  # the pipeline: optimise, polish, classify
    np.testing.assert_array_equal(cols["f_star"], spec.f_convex)  # the reference_value hook
    assert np.all(np.abs(cols["f_gap"]) <= 1e-8) and np.all(cols["at_optimum"])
    # a planted saddle: an optimum of the same problem in d' = 2 < K - 1, zero-padded to d = 4
    small = spec0.replace(d=2)
    r2 = ufm.optimize(
        small,
        ufm.init_batch(small, jax.random.key(3), num_seeds=1),
        ufm.OptimizerSettings(learning_rate=1.0, max_steps=3000, tol=1e-8),
    )
    sad = pad_params(jax.tree_util.tree_map(lambda x: x[0], ufm.polish(small, r2.params).params), 4)
    plain = ufm.run_points(spec0, p0, optimizer=settings, analyses=analyses).columns
    # without an attached reference the closed_form analysis computes the same value (cached)
    np.testing.assert_array_equal(plain["f_star"], spec.f_convex)
    rec = ufm.classify(spec, sad, method="dense")
    assert int(rec.code) == ufm.PointClass.STRICT_SADDLE
    assert float(rec.f_gap) > 1e-3 and float(rec.f_gap) > float(rec.f_tol)
    # MSE with class sizes has a closed form: unchanged; d below the program's rank: refused
    mse = ufm.UFMSpec(K=3, n=(4, 2, 1), d=3, loss="mse")
    assert with_convex_reference(mse) is mse
    with pytest.raises(ufm.SpecError, match="rank"):
        with_convex_reference(spec0.replace(d=2), gap_tol=1e-3)


@pytest.mark.parametrize(
    "sizes,bias,d,lam",
    [((5, 5, 5, 2), "free", 5, 1e-2)],
)
def test_closed_form_optimum_is_classified_global_with_predicted_zero_modes(sizes, bias, d, lam):
    """At the imbalanced MSE optimum the Hessian has exactly the predicted symmetry zero modes
    (O(d), plus class rotations only within groups of equal-size classes) and no negative
    eigenvalue: the classifier calls it a global minimum (f* from the closed form)."""
    spec = ufm.UFMSpec(
        K=len(sizes), n=sizes, d=d, loss="mse", bias=bias, lambda_W=lam, lambda_H=lam
    )
    opt = imbalanced_optimum(spec)
    rec = ufm.classify(spec, opt.params, method="dense")
    assert int(rec.code) == ufm.PointClass.GLOBAL_MIN
    ev = np.asarray(ufm.hessian.hessian_spectrum_dense(spec, opt.params))
    assert int(rec.n_zero) == int(rec.zero_modes_predicted) == int(np.sum(np.abs(ev) < 1e-10))
    assert float(rec.lambda_pos_min) == pytest.approx(np.min(ev[ev > 1e-10]), rel=1e-9)
    ba = ufm.classify(spec, opt.params, method="block_arrow")  # Haynsworth inertia, per sample
    assert int(ba.code) == int(rec.code) and int(ba.n_zero) == int(rec.n_zero)
