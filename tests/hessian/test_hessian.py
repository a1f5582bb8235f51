"""Hessian spectra: dense oracle, Lanczos, exact block-arrow inertia, structured Newton steps.

The three spectrum routines are checked against each other (and the block-arrow blocks against the
dense Hessian) at random points, at converged minima and at planted saddles, for CE and MSE with
every bias variant, ``d = K`` and ``d > K``. Critical points come from an independent solver in this
file (scipy L-BFGS on ``jax.value_and_grad``, then dense Newton with a numpy pseudo-inverse).
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
from jax.flatten_util import ravel_pytree

import ufm
from ufm.core import register_spec

BIASES = ("none", "free", "regularized")
LW = LH = 5e-3


def make_spec(loss, bias, d, K=3, n=2, **kw):
    lb = 0.01 if bias == "regularized" else 0.0
    return ufm.UFMSpec(
        K=K, n=n, d=d, loss=loss, bias=bias, lambda_W=LW, lambda_H=LH, lambda_b=lb, **kw
    )


def random_point(spec, seed, scale=0.7):
    p = ufm.init_params(spec, jax.random.key(seed), scale=scale)
    if p.b is not None:
        p = p._replace(b=0.3 * jnp.arange(spec.K, dtype=p.b.dtype))
    return p


@functools.cache
def solve(spec, seed):
    """A critical point near the L-BFGS limit from a random start, polished by dense Newton."""
    p0 = random_point(spec, seed, scale=0.3)
    x0, unravel = ravel_pytree(p0)

    def fun(x):
        f, g = value_and_grad(spec, unravel(jnp.asarray(x)))
        return float(f), np.asarray(ravel_pytree(g)[0], np.float64)

    x = scipy.optimize.minimize(
        fun,
        np.asarray(x0),
        jac=True,
        method="L-BFGS-B",
        options=dict(maxiter=5000, gtol=1e-9, ftol=0.0),
    ).x
    for _ in range(10):  # independent dense Newton (numpy pseudo-inverse)
        g = fun(x)[1]
        if np.linalg.norm(g) < 1e-14:
            break
        ev, V = np.linalg.eigh(np.asarray(dense_H(spec, unravel(jnp.asarray(x)))))
        keep = np.abs(ev) > 1e-10 * np.abs(ev).max()
        x = x - V[:, keep] @ ((V[:, keep].T @ g) / ev[keep])
    return unravel(jnp.asarray(x))


@functools.cache
def planted_saddle(spec, seed, d_sub=1):
    """Solve in dimension ``d_sub`` and zero-pad ``W`` columns and ``H`` rows to ``spec.d``."""
    p = solve(spec.replace(d=d_sub), seed)
    pad = spec.d - d_sub
    return p._replace(W=jnp.pad(p.W, ((0, 0), (0, pad))), H=jnp.pad(p.H, ((0, pad), (0, 0))))


def counts(ev, tol):
    ev = np.asarray(ev)
    return (int((ev < -tol).sum()), int(((ev >= -tol) & (ev < tol)).sum()), int((ev >= tol).sum()))


def block_order(spec):
    """Permutation from the pytree order (W, H row-major, b) to the block-arrow order (W, b, H)."""
    K, d, N = spec.K, spec.d, spec.N
    nb = K if spec.has_bias else 0
    return np.r_[np.arange(K * d), K * d + d * N + np.arange(nb), K * d + np.arange(d * N)]


spectrum = jax.jit(ufm.hessian.block_arrow_spectrum, static_argnames=("method", "sample_chunk"))
dense_H = jax.jit(lambda spec, p: ufm.hessian.hessian_dense(spec, p)[0])
grad_norm = jax.jit(ufm.grad_norm)
value_and_grad = jax.jit(jax.value_and_grad(ufm.loss, argnums=1))


def dense_ev(spec, p):
    """The oracle: numpy eigvalsh of the autodiff Hessian (one compile per shape, with dense_H)."""
    return np.linalg.eigvalsh(np.asarray(dense_H(spec, p)))


lanczos = jax.jit(ufm.hessian.lanczos_extremes, static_argnames=("num_matvecs",))
newton = jax.jit(ufm.hessian.newton_step, static_argnames=("method",))


# -- block-arrow blocks: fast path == autodiff path == dense Hessian ----------------------------


@jax.jit(static_argnames=("method", "sample_chunk"))
def facts(spec, p, sigma, Y, x, method="auto", sample_chunk=1024):
    ba = ufm.hessian.block_arrow(spec, p, method=method, sample_chunk=sample_chunk)
    S, C = ba.schur(sigma)
    return (
        ba.A,
        S,
        ba.apply_cinv(C, Y),
        ufm.hessian.block_arrow_matvec(ba, x),
        ba.diag_min,
        ba.b_fro(),
    )


@pytest.mark.parametrize("loss", ["ce", "mse"])
@pytest.mark.parametrize("bias", BIASES)
def test_block_arrow_blocks_match_dense(loss, bias):
    # d < K (D_min by eigvalsh of every D_i) for "none", d > K (D_min = lambda_H for CE) otherwise
    for d in (2,) if bias == "none" else (4,):
        spec = make_spec(loss, bias, d, n=3)
        p = random_point(spec, 1)
        Hd = np.asarray(dense_H(spec, p))[np.ix_(block_order(spec), block_order(spec))]
        P = spec.K * d + (spec.K if spec.has_bias else 0)
        A, B, D = Hd[:P, :P], Hd[:P, P:], Hd[P:, P:]
        rng = np.random.default_rng(0)
        x = rng.normal(size=Hd.shape[0])
        Y = rng.normal(size=(d, spec.N))
        sigma = -0.3
        S_ref = A - sigma * np.eye(P) - B @ np.linalg.solve(D - sigma * np.eye(D.shape[0]), B.T)
        y_ref = np.linalg.solve(D - sigma * np.eye(D.shape[0]), Y.reshape(-1)).reshape(d, -1)
        for kw in ({"sample_chunk": 4}, {"method": "autodiff"}):  # several padded chunks; generic
            A_, S, y, Hx, dmin, bfro = facts(spec, p, sigma, jnp.asarray(Y), jnp.asarray(x), **kw)
            np.testing.assert_allclose(A_, A, atol=1e-14)
            np.testing.assert_allclose(S, S_ref, atol=1e-12)
            np.testing.assert_allclose(y, y_ref, atol=1e-11)
            np.testing.assert_allclose(Hx, Hd @ x, atol=1e-13)
            assert abs(float(dmin) - np.linalg.eigvalsh(D)[0]) < 1e-14
            assert abs(float(bfro) - np.linalg.norm(B)) < 1e-12
    assert isinstance(
        jax.eval_shape(lambda p: ufm.hessian.block_arrow(spec, p), p), ufm.systems.ufm.UFMBlockArrow
    )
    assert isinstance(
        jax.eval_shape(lambda p: ufm.hessian.block_arrow(spec, p, method="autodiff"), p),
        ufm.hessian.BlockArrow,
    )


def test_dense_hessian_matches_finite_differences():
    spec = make_spec("ce", "free", 3)
    p = random_point(spec, 0)
    x, unravel = ravel_pytree(p)
    grad = jax.jit(jax.grad(lambda x: ufm.loss(spec, unravel(x))))
    H = dense_H(spec, p)
    v = jax.random.normal(jax.random.key(3), x.shape, x.dtype)
    h = 1e-5
    fd = (grad(x + h * v) - grad(x - h * v)) / (2 * h)
    np.testing.assert_allclose(H @ v, fd, atol=1e-8)
    np.testing.assert_allclose(H, H.T, atol=0)


# -- the three routines agree: random points, minima, planted saddles ---------------------------


def zero_modes(spec, W):
    r = int(np.linalg.matrix_rank(np.asarray(W), tol=1e-6 * np.abs(W).max()))
    d = spec.d
    free_ce = int(spec.loss == "ce" and spec.bias == "free")  # b -> b + c 1
    return d * (d - 1) // 2 - (d - r) * (d - r - 1) // 2 + free_ce


CASES = [(loss, bias, 3) for loss in ("ce", "mse") for bias in BIASES] + [
    ("ce", "free", 5),
    ("mse", "regularized", 5),
]


@pytest.mark.parametrize("loss,bias,d", CASES)  # d = K = 3 for every variant, d > K for two
def test_three_routines_agree(loss, bias, d):
    spec = make_spec(loss, bias, d)
    points = {
        "random": random_point(spec, 2),
        "minimum": solve(spec, 5),
        "saddle": planted_saddle(spec, 7),
    }
    for kind, p in points.items():
        assert kind == "random" or float(grad_norm(spec, p)) < 1e-12
        ev = np.asarray(dense_ev(spec, p))
        res = spectrum(spec, p)
        assert bool(res.converged), kind
        assert (int(res.n_neg), int(res.n_zero), int(res.n_pos)) == counts(ev, res.zero_tol), kind
        assert abs(float(res.lambda_min) - ev[0]) < 1e-10, kind
        assert float(res.lambda_min_lower) <= ev[0] + 1e-13 <= float(res.lambda_min) + 2e-13
        lz = lanczos(spec, p, jax.random.key(0), num_matvecs=ev.size)  # the whole space: exact
        assert abs(float(lz.lambda_min) - ev[0]) < 1e-12 and float(lz.residual_min) < 1e-10
        assert abs(float(lz.lambda_max) - ev[-1]) < 1e-12 and float(lz.residual_max) < 1e-10
        if kind == "minimum":
            assert int(res.n_neg) == 0 and int(res.n_zero) == zero_modes(spec, p.W), kind
        if kind == "saddle":  # a strict saddle meeting the curvature bound of theory.md section 3
            G = ufm.systems.ufm.fit_grad(ufm.systems.ufm.logits(p), loss, spec.n)
            s1 = float(np.linalg.norm(np.asarray(G), 2))
            bound = 2 * (np.sqrt(LW * LH) - s1) / (np.sqrt(LH / LW) + np.sqrt(LW / LH))
            assert int(res.n_neg) >= 1 and ev[0] <= bound + 1e-12
    if d > spec.K:  # the generic autodiff path end to end, at the planted saddle
        res2 = spectrum(spec, points["saddle"], method="autodiff")
        assert (int(res2.n_neg), int(res2.n_zero)) == (int(res.n_neg), int(res.n_zero))
        assert abs(float(res2.lambda_min) - float(res.lambda_min)) < 1e-10


@jax.jit
def _certified_counts(spec, p, sigmas, shifts):
    ba = ufm.hessian.block_arrow(spec, p)
    ev = jax.vmap(lambda s: ufm.hessian.inertia._evaluate(ba, s, shifts, ba.diag_min))(sigmas)
    return ev[1], ev[3]


@pytest.mark.parametrize("loss,bias", [("ce", "none"), ("mse", "free")])
def test_certified_counts_from_one_evaluation(loss, bias):
    """The counts at other shifts that one S(sigma) certifies (Loewner bounds, _evaluate) equal the
    dense counts, at a random point, a minimum with zero modes and a planted saddle."""
    spec = make_spec(loss, bias, 3)
    n_cert = 0
    for p in (random_point(spec, 2), solve(spec, 5), planted_saddle(spec, 7)):
        ev = dense_ev(spec, p)
        sigmas = np.array([ev[0] - 1e-3, ev[0] + 1e-9, -1e-7, -1e-9, 1e-9, 1e-7, 2e-3])
        shifts = np.array([-1e-8, 1e-8])
        below, cert = _certified_counts(spec, p, jnp.asarray(sigmas), jnp.asarray(shifts))
        for sigma, b, c in zip(sigmas, np.asarray(below), np.asarray(cert), strict=True):
            assert int(b) == int((ev < sigma).sum())
            for s, cs in zip(shifts, c, strict=True):
                if cs >= 0:
                    n_cert += 1
                    assert int(cs) == int((ev < s).sum()), (sigma, s)
    assert n_cert >= 10  # the bounds decide most of these counts


def test_block_arrow_many_chunks_and_samples():
    """More samples than one chunk (padding), larger K and d; Lanczos with a short Krylov space."""
    spec = ufm.UFMSpec(K=4, n=6, d=5, loss="ce", bias="free", lambda_W=1e-3, lambda_H=1e-3)
    p = random_point(spec, 4, scale=1.0)
    ev = np.asarray(dense_ev(spec, p))
    res = spectrum(spec, p, sample_chunk=7)
    assert bool(res.converged)
    assert (int(res.n_neg), int(res.n_zero), int(res.n_pos)) == counts(ev, res.zero_tol)
    assert abs(float(res.lambda_min) - ev[0]) < 1e-10
    lz = lanczos(spec, p, jax.random.key(1), num_matvecs=60)
    for lam, r, ref in (
        (lz.lambda_min, lz.residual_min, ev[0]),
        (lz.lambda_max, lz.residual_max, ev[-1]),
    ):
        assert abs(float(lam) - ref) <= max(1e-6, float(r))
    assert ev[0] - 1e-12 <= float(lz.lambda_min) and float(lz.lambda_max) <= ev[-1] + 1e-12


# -- Lanczos at partial Krylov depth, and sizes beyond N = 24 ---------------------------------


def _kato_temple(theta, r, ev, side):
    """Distance of a Ritz value to the extreme eigenvalue it approximates: at most its residual
    (Weyl), and at most ``r^2 / gap`` (Kato-Temple) while it stays on the outer side of the next
    eigenvalue."""
    lam, nxt = (ev[0], ev[1]) if side == "min" else (ev[-1], ev[-2])
    err = abs(theta - lam)
    gap = (nxt - theta) if side == "min" else (theta - nxt)
    bound = r if gap <= 0 else min(r, r**2 / gap)
    return err, bound


def test_lanczos_partial_depth_bounds_and_convergence():
    """p = 1503 parameters (K = 3, d = 2, n = 249, free bias), Krylov depths 8 .. 96 from one
    start vector: the Ritz values are nested (lambda_min non-increasing, lambda_max
    non-decreasing in the depth), inside the spectrum, within their residuals of the extreme
    eigenvalues and within r^2 / gap of them (Kato-Temple): rigorous, not a 1e-6 tolerance."""
    spec = make_spec("ce", "free", 2, n=249)
    p = random_point(spec, 3, scale=0.8)
    ev = np.asarray(dense_ev(spec, p))
    assert ev.size == 1503
    prev = None
    for m in (8, 24, 48, 96):
        lz = lanczos(spec, p, jax.random.key(1), num_matvecs=m)
        lo, hi = float(lz.lambda_min), float(lz.lambda_max)
        tol = 1e-13 * abs(ev).max()
        assert ev[0] - tol <= lo and hi <= ev[-1] + tol
        for theta, r, side in (
            (lo, float(lz.residual_min), "min"),
            (hi, float(lz.residual_max), "max"),
        ):
            err, bound = _kato_temple(theta, r, ev, side)
            assert err <= bound * (1 + 1e-6) + tol, (m, side, err, bound)
        if prev is not None:
            assert lo <= prev[0] + tol and hi >= prev[1] - tol
        prev = (lo, hi)
    assert abs(prev[0] - ev[0]) < 1e-8 * abs(ev).max()  # 96 of 1503: converged at the ends


def test_classify_at_the_auto_switch_size():
    """method="auto" switches from the dense Hessian to the block-arrow routine above
    DENSE_CLASSIFY_MAX_PARAMS = 1500 parameters: K = 3, d = 2, n = 249 has 1500 without bias
    (dense) and 1503 with a free bias (block-arrow). At 1503 both routines give the same class,
    counts and lambda_min at the optimum, the origin (a saddle of Morse index 2 (K-1) = 4) and a
    random point (N = 747 samples)."""
    from ufm.landscape.classify import DENSE_CLASSIFY_MAX_PARAMS, resolve_method

    small, big = make_spec("ce", "none", 2, n=249), make_spec("ce", "free", 2, n=249)
    assert (small.num_params, big.num_params) == (DENSE_CLASSIFY_MAX_PARAMS, 1503)
    assert resolve_method(small, "auto") == "dense"
    assert resolve_method(big, "auto") == "block_arrow"
    opt = ufm.optimum(big).params
    origin = jax.tree_util.tree_map(jnp.zeros_like, opt)
    pts = jax.tree_util.tree_map(lambda *x: jnp.stack(x), opt, origin, random_point(big, 5))
    auto = ufm.classify_batch(big, pts, warn=False)
    dense = ufm.classify_batch(big, pts, method="dense", warn=False)
    assert auto["class"].tolist() == dense["class"].tolist()
    assert auto["class"].tolist()[:2] == ["global_min", "strict_saddle"]
    np.testing.assert_array_equal(auto["n_neg"], dense["n_neg"])
    for k in ("n_zero", "n_pos"):  # at the critical points
        np.testing.assert_array_equal(auto[k][:2], dense[k][:2], err_msg=k)
    assert auto["n_neg"][1] == 4 and auto["n_zero"][0] == 2  # z(2, 2) = 1 rotation + the shift
    np.testing.assert_allclose(auto["lambda_min"], dense["lambda_min"], rtol=0, atol=1e-10)
    # the random point: zero_tol is huge there (10 ||grad f|| / orbit_scale) and block_arrow caps
    # its upper shift at lambda_H / 2: its counts are those of the recorded band
    ev = dense_ev(big, random_point(big, 5))
    lo, hi = auto["zero_tol"][2], auto["zero_tol_upper"][2]
    assert LH / 2 <= hi < 0.01 < lo  # half the smallest D_i eigenvalue (>= lambda_H / 2)
    assert (auto["n_neg"][2], auto["n_zero"][2], auto["n_pos"][2]) == (
        int((ev < -lo).sum()),
        int(((ev >= -lo) & (ev < hi)).sum()),
        int((ev >= hi).sum()),
    )


# -- Lanczos breakdown -----------------------------------------------------------------------------


@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_lanczos_breakdown_at_origin_is_finite(loss):
    spec = make_spec(loss, "none", 3).replace(lambda_W=0.1, lambda_H=0.2)
    p = ufm.UFMParams(jnp.zeros((3, 3)), jnp.zeros((3, spec.N)))
    ev = np.asarray(dense_ev(spec, p))  # a handful of distinct eigenvalues
    lz = lanczos(spec, p, jax.random.key(0), num_matvecs=24)
    assert bool(lz.breakdown) and int(lz.num_restarts) > 0
    leaves = [
        lz.lambda_min,
        lz.lambda_max,
        lz.residual_min,
        lz.residual_max,
        lz.ritz_values,
        *jax.tree_util.tree_leaves(lz.vector_min),
    ]
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in leaves)
    assert abs(float(lz.lambda_min) - ev[0]) < 1e-10 and abs(float(lz.lambda_max) - ev[-1]) < 1e-10
    # every Ritz value is a Rayleigh-Ritz value: within the spectrum
    assert np.all(np.asarray(lz.ritz_values) >= ev[0] - 1e-12)
    assert np.all(np.asarray(lz.ritz_values) <= ev[-1] + 1e-12)
    v, _ = ravel_pytree(lz.vector_min)
    H = np.asarray(dense_H(spec, p))
    assert np.linalg.norm(H @ v - ev[0] * v) < 1e-8
    res = spectrum(spec, p)
    assert bool(res.converged) and abs(float(res.lambda_min) - ev[0]) < 1e-10
    assert (int(res.n_neg), int(res.n_zero), int(res.n_pos)) == counts(ev, res.zero_tol)


def test_lanczos_bad_depth():
    spec = make_spec("mse", "none", 3)
    with pytest.raises(ValueError, match="num_matvecs"):
        ufm.hessian.lanczos_extremes(
            spec, random_point(spec, 0), jax.random.key(0), num_matvecs=10**4
        )
    with pytest.raises(ValueError, match="method"):
        ufm.hessian.block_arrow(spec, random_point(spec, 0), method="qr")


# -- vmap == loop ----------------------------------------------------------------------------------


def test_vmap_equals_loop():
    spec = make_spec("ce", "free", 3)
    ps = ufm.init_batch(spec, jax.random.key(0), 3, scale=0.8)
    keys = jax.random.split(jax.random.key(1), 3)
    vres = jax.jit(jax.vmap(lambda p: ufm.hessian.block_arrow_spectrum(spec, p)))(ps)
    vlz = jax.jit(jax.vmap(lambda p, k: ufm.hessian.lanczos_extremes(spec, p, k, num_matvecs=20)))(
        ps, keys
    )
    vev = jax.jit(jax.vmap(lambda p: ufm.hessian.hessian_spectrum_dense(spec, p)))(ps)
    for i in range(3):
        p = jax.tree_util.tree_map(lambda x: x[i], ps)
        res = spectrum(spec, p)
        for a, b in zip(res, vres):
            np.testing.assert_allclose(np.asarray(b)[i], np.asarray(a), rtol=1e-12, atol=1e-14)
        lz = lanczos(spec, p, keys[i], num_matvecs=20)
        np.testing.assert_allclose(vlz.ritz_values[i], lz.ritz_values, atol=1e-12)
        np.testing.assert_allclose(vev[i], dense_ev(spec, p), atol=1e-12)
    # the lambdas are traced spec leaves: another strength reuses the compiled spectrum
    size = spectrum._cache_size()
    res = spectrum(spec.replace(lambda_W=2e-3, lambda_H=3e-3), p)
    assert spectrum._cache_size() == size and bool(res.converged)


# -- Newton steps ----------------------------------------------------------------------------------


def _add(p, s):
    return jax.tree_util.tree_map(lambda a, b: a + b, p, s)


@pytest.mark.parametrize("loss,bias", [("ce", "free"), ("mse", "regularized"), ("ce", "none")])
def test_newton_step_structured_equals_dense_and_polishes(loss, bias):
    spec = make_spec(loss, bias, 4)
    step = newton
    p = random_point(spec, 3)  # a generic point: nonsingular Hessian, the two steps must agree
    s_dense, _ = ravel_pytree(step(spec, p, method="dense"))
    s_struct, _ = ravel_pytree(step(spec, p, method="structured"))
    np.testing.assert_allclose(
        s_struct, s_dense, rtol=1e-9, atol=1e-9 * float(jnp.max(jnp.abs(s_dense)))
    )
    for target in (solve(spec, 5), planted_saddle(spec, 7)):
        x, unravel = ravel_pytree(target)
        q = unravel(x + 1e-4 * jax.random.normal(jax.random.key(9), x.shape, x.dtype))
        norms = [float(grad_norm(spec, q))]
        for _ in range(5):
            q = _add(q, step(spec, q, method="structured"))
            norms.append(float(grad_norm(spec, q)))
        assert norms[0] > 1e-6 and min(norms[1:5]) <= 1e-10, norms
        assert float(ufm.loss(spec, q)) == pytest.approx(float(ufm.loss(spec, target)), abs=1e-9)


# -- the generic path serves other per-sample models -----------------------------------------------


@dataclasses.dataclass(frozen=True)
class TanhSpec:
    """A two-layer per-sample model: f = 1/(2N) sum ||V tanh(U h_i) - y_i||^2 + regularisers."""

    K: int = 3
    n: int = 2
    d: int = 3
    width: int = 4
    lam: float = 1e-2

    @property
    def N(self):
        return self.K * self.n


register_spec(TanhSpec, ("lam",))


def _tanh_loss(spec: TanhSpec, params):
    U, V, H = params
    Y = jnp.asarray(ufm.systems.ufm.one_hot_targets(spec.K, spec.n, H.dtype))
    Z = V @ jnp.tanh(U @ H)
    reg = jnp.sum(U**2) + jnp.sum(V**2) + jnp.sum(H**2)
    return 0.5 * jnp.sum((Z - Y) ** 2) / spec.N + 0.5 * spec.lam * reg


def _tanh_split(spec: TanhSpec, params):
    U, V, H = params
    return ufm.hessian.FeatureSplit((U, V), H, lambda th, F: (th[0], th[1], F))


def _tanh_init(spec: TanhSpec, key, scale=None):
    k1, k2, k3 = jax.random.split(key, 3)
    return (
        jax.random.normal(k1, (spec.width, spec.d)),
        jax.random.normal(k2, (spec.K, spec.width)),
        jax.random.normal(k3, (spec.d, spec.N)),
    )


ufm.core.register_system(
    ufm.core.System(
        name="test_tanh",
        spec_type=TanhSpec,
        loss=_tanh_loss,
        init=_tanh_init,
        examples=lambda: (TanhSpec(),),
        split_features=_tanh_split,
        sweepable=False,
    )
)


def test_generic_path_other_model():
    """Indefinite D_i (tanh curvature), the Haynsworth term In(D - sigma I) counted exactly."""
    spec = TanhSpec()
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    p = (
        2.0 * jax.random.normal(k1, (4, 3)),
        2.0 * jax.random.normal(k2, (3, 4)),
        2.0 * jax.random.normal(k3, (3, spec.N)),
    )
    ev = np.asarray(dense_ev(spec, p))

    @jax.jit
    def inertias(p, sigmas):
        ba = ufm.hessian.block_arrow(spec, p)
        return ba.diag_min, jax.vmap(lambda s: ufm.hessian.block_arrow_inertia(ba, s))(sigmas)

    assert isinstance(
        jax.eval_shape(lambda p: ufm.hessian.block_arrow(spec, p), p), ufm.hessian.BlockArrow
    )
    dmin, _ = inertias(p, jnp.zeros(1))
    sigmas = jnp.asarray([ev[0] - 0.1, 0.0, float(dmin) + 1e-3, ev[3] + 1e-3])
    dmin, below = inertias(p, sigmas)
    assert float(dmin) < 0  # indefinite D_i: the term In(D - sigma I) matters
    assert [int(b) for b in below] == [int((ev < s).sum()) for s in np.asarray(sigmas)]
    res = spectrum(spec, p)
    assert bool(res.converged) and abs(float(res.lambda_min) - ev[0]) < 1e-10
    assert (int(res.n_neg), int(res.n_zero), int(res.n_pos)) == counts(ev, res.zero_tol)
    s_dense, _ = ravel_pytree(newton(spec, p, method="dense"))
    s_struct, _ = ravel_pytree(newton(spec, p))
    np.testing.assert_allclose(s_struct, s_dense, rtol=1e-8, atol=1e-8)
    with pytest.raises(TypeError, match="fast"):
        ufm.hessian.block_arrow(spec, p, method="fast")


def test_float32_runs():
    spec = make_spec("ce", "free", 3, dtype="float32")
    p = random_point(spec, 0)
    res = spectrum(spec, p)
    lz = lanczos(spec, p, jax.random.key(0), num_matvecs=16)
    assert res.lambda_min.dtype == jnp.float32 and lz.lambda_min.dtype == jnp.float32
    ev = np.asarray(
        dense_ev(
            spec.replace(dtype="float64"),
            jax.tree_util.tree_map(lambda x: x.astype(jnp.float64), p),
        )
    )
    assert abs(float(res.lambda_min) - ev[0]) < 1e-4
