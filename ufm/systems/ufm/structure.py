"""UFM fast path of the block-arrow Hessian (closed forms, chunked sample loop).

Notation (docs/theory.md sections 1, 3): ``z_i = W h_i + b``, per-sample logit Hessian ``Hz_i`` (CE
``diag(p_i) - p_i p_i^T``, MSE ``I``), ``g_i`` the column ``i`` of ``G = grad_Z g`` (already over
``N``), ``P_i = Hz_i W / N``, ``q_i = W^T p_i``. In the order ``theta = (W row-major, b)``:

* ``A_WW = (1/N) sum_i Hz_i (x) h_i h_i^T + lambda_W I``, ``A_Wb[(k,j), l] = (1/N) sum_i Hz_i[k,l]
  h_ij``, ``A_bb = (1/N) sum_i Hz_i + lambda_b I``;
* ``B_i = [P_i (x) h_i + g_i (x) I_d ; P_i]`` (``d`` columns), ``D_i = W^T P_i + lambda_H I``.

With ``C_i = (D_i - sigma I)^{-1}``, ``U_i = P_i C_i`` (``K x d``) and ``R_i = U_i P_i^T`` (``K x
K``), ``sum_i B_i C_i B_i^T`` is, in the index order ``[(k, j), (l, m)]``,

* ``WW = T1 + T2 + T2^T + T3``: ``T1 = sum_i R_i[k,l] h_ij h_im``, ``T2 = sum_i U_i[k,m] h_ij
  g_il``, ``T3 = sum_i g_ik g_il C_i[j,m]``;
* ``Wb[(k,j), l] = sum_i R_i[k,l] h_ij + g_ik U_i[l,j]``, ``bb = sum_i R_i``.

Each term is one matmul over the sample axis, ``O(N K^2 d^2)`` (``T1``, ``T3`` on packed upper
triangles). Samples are processed in a ``lax.scan`` over chunks of ``sample_chunk`` (zero-padded: a
padded sample has ``p = g = h = 0`` and contributes nothing) stored with the samples on the *last*
axis (``(num_chunks, ., sample_chunk)``), so that every per-sample quantity is a contiguous vector
over the chunk: per chunk ``D_i`` by one GEMM, ``C_i`` by the vectorised Gauss-Jordan of
:mod:`ufm.kernels.small_spd`, ``V_i = W C_i`` and ``W C_i W^T`` by two GEMMs (``U_i`` and ``R_i``
follow elementwise from ``P_i = diag(p_i) (W - 1 q_i^T) / N``), and the three sample-axis matmuls
into small accumulators; ``(D_i - sigma I)^{-1} y_i`` (:meth:`UFMBlockArrow.apply_cinv`) is an
unrolled elementwise sum. No ``(K, d, N)`` temporary is formed: on CPU the memory traffic of such
temporaries, not the flops, dominates (an unrolled elementwise LDL^T was measured several times
slower and ten times slower to compile). For MSE every sample shares ``D_i`` and ``P_i`` and the
sums collapse to ``H H^T``, ``H G^T``, ``G G^T``.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ...core.validation import SpecError, is_concrete
from ...hessian.structure import FeatureSplit
from ...kernels import register_value_and_grad, spd_inverse_batched_last, ufm_value_and_grad
from ...kernels.native import schur_supports, ufm_cinv_apply, ufm_schur_sums, unavailable_reason
from .objective import UFMParams, fit_grad, logits, ufm_loss
from .spec import UFMSpec

__all__ = ["UFMBlockArrow", "ufm_block_arrow", "ufm_split_features", "ufm_fused_value_and_grad"]


def _triu(n):
    """Upper-triangle indices of ``n x n`` and the symmetric map ``(i, j) -> packed index``."""
    iu = np.triu_indices(n)
    full = np.zeros((n, n), dtype=np.int32)
    full[iu] = np.arange(iu[0].size)
    return iu, np.maximum(full, full.T)


def _unpack_kron(Tp, K, d):
    """``Tp[(k<=l), (j<=m)]`` -> ``T[k, j, l, m]`` for a sum of symmetric (x) symmetric terms."""
    _, iK = _triu(K)
    _, id_ = _triu(d)
    return Tp[iK[:, None, :, None], id_[None, :, None, :]]


class UFMBlockArrow(NamedTuple):
    """UFM block-arrow Hessian in factored form (see the module docstring for the formulas).

    Fields: ``A (P, P)``; ``W (K, d)``; ``H (d, N)``; ``G (K, N)`` the per-sample logit gradients
    over
    ``N``; ``Pr (K, N)`` the softmax probabilities (CE) or ``None`` (MSE); ``Hc, Gc, Pc`` the same
    zero-padded and split into chunks ``(num_chunks, ., sample_chunk)`` (CE) or ``None``;
    ``lambda_H``; ``D_min = min_i lambda_min(D_i)``.
    """

    A: jax.Array
    W: jax.Array
    H: jax.Array
    G: jax.Array
    Pr: jax.Array | None
    Hc: jax.Array | None
    Gc: jax.Array | None
    Pc: jax.Array | None
    lambda_H: jax.Array
    D_min: jax.Array

    @property
    def num_samples(self) -> int:
        return self.H.shape[-1]

    @property
    def feature_dim(self) -> int:
        return self.W.shape[1]

    @property
    def has_bias(self) -> bool:
        K, d = self.W.shape
        return self.A.shape[0] == K * d + K

    @property
    def diag_min(self):
        return self.D_min

    @property
    def diag_max(self):
        """Upper bound ``lambda_H + ||W||_2^2 / N`` of ``max_i ||D_i||_2`` (``||Hz_i||_2 <= 1``)."""
        return self.lambda_H + jnp.linalg.norm(self.W, 2) ** 2 / self.num_samples

    def diag_eigenvalue(self, c, all_eigenvalues):
        """``lambda_c(blockdiag D_i)`` (0-based): MSE, one shared ``D_i`` (each eigenvalue ``N``
        times); CE with ``d >= K``, ``lambda_H`` for ``c < N (d - K + 1)`` (``W^T Hz_i W`` has
        rank ``<= K - 1``); otherwise ``all_eigenvalues()`` (a ``lax.cond``: computed only when
        needed)."""
        K, d = self.W.shape
        N = self.num_samples
        dtype = self.A.dtype
        if self.Pr is None:
            ev = jnp.linalg.eigvalsh(self.W.T @ self.W / N) + self.lambda_H
            return jnp.where(c < d * N, ev[jnp.clip(c // N, 0, d - 1)], jnp.inf).astype(dtype)
        flat = N * max(d - K + 1, 0)
        lH = jnp.asarray(self.lambda_H, dtype)
        return jax.lax.cond(c < flat, lambda: lH, lambda: all_eigenvalues().astype(dtype))

    def count_diag_below(self, sigma):
        """0: callers keep ``sigma < D_min`` for this structure (``D_i >= lambda_H I``)."""
        return jnp.zeros((), jnp.int32)

    # -- products with B, B^T, D in O(N K d), no per-sample matrices -----------------------------
    def _hz(self, V):
        """``Hz_i v_i / N`` for every column of ``V (K, N)``."""
        N = self.num_samples
        if self.Pr is None:
            return V / N
        p = self.Pr
        pv = p * V
        ones = jnp.ones((1, p.shape[0]), p.dtype)
        return (pv - p * (ones @ pv)) / N  # a matmul, not a strided reduction over the K axis

    def _split_theta(self, u):
        K, d = self.W.shape
        return u[: K * d].reshape(K, d), (u[K * d :] if self.has_bias else None)

    def bt(self, u):
        """``B_i^T u = P_i^T (u_W h_i + u_b) + u_W^T g_i`` for every sample, ``(d, N)``."""
        uW, ub = self._split_theta(u)
        v = uW @ self.H
        if ub is not None:
            v = v + ub[:, None]
        return self.W.T @ self._hz(v) + uW.T @ self.G

    def b(self, Y):
        """``sum_i B_i y_i``: ``W`` part ``sum_i (P_i y_i) h_i^T + g_i y_i^T``, ``b`` part
        ``sum_i P_i y_i``."""
        Py = self._hz(self.W @ Y)
        out = (Py @ self.H.T + self.G @ Y.T).reshape(-1)
        if self.has_bias:
            out = jnp.concatenate([out, jnp.sum(Py, axis=1)])
        return out

    def matvec(self, u, Y):
        """Hessian-vector product ``(A u + sum_i B_i y_i, B_i^T u + D_i y_i)``, sharing ``W Y``."""
        uW, ub = self._split_theta(u)
        WY = self.W @ Y
        Py = self._hz(WY)
        top = (Py @ self.H.T + self.G @ Y.T).reshape(-1)
        if self.has_bias:
            top = jnp.concatenate([top, jnp.sum(Py, axis=1)])
        v = WY + uW @ self.H
        if ub is not None:
            v = v + ub[:, None]
        bottom = self.W.T @ self._hz(v) + uW.T @ self.G + self.lambda_H * Y
        return self.A @ u + top, bottom

    def d_apply(self, Y):
        return self.W.T @ self._hz(self.W @ Y) + self.lambda_H * Y

    def b_fro(self):
        """``||[B_1 ... B_N]||_F`` in closed form, ``O(N K d)``."""
        N = self.num_samples
        K, d = self.W.shape
        W, H, G = self.W, self.H, self.G
        WH = W @ H
        if self.Pr is None:
            p2 = jnp.full((N,), jnp.sum(W**2) / N**2, W.dtype)
            cross = _colsum(G * WH) / N
        else:
            p = self.Pr
            q = W.T @ p
            p2 = (
                jnp.sum(W**2, axis=1) @ p**2
                - 2.0 * _colsum(p**2 * (W @ q))
                + _colsum(q**2) * _colsum(p**2)
            ) / N**2
            cross = _colsum(G * p * WH) - _colsum(q * H) * _colsum(G * p)
            cross = cross / N
        tot = p2 * _colsum(H**2) + d * _colsum(G**2) + 2.0 * cross
        if self.has_bias:
            tot = tot + p2
        return jnp.sqrt(jnp.sum(tot))

    # -- Schur complement ------------------------------------------------------------------------
    def schur(self, sigma, kernel: str = "auto"):
        """``S(sigma)`` and the inverses ``(D_i - sigma I)^{-1}`` in the form :meth:`apply_cinv`
        takes (``sigma < D_min``).

        ``kernel`` (CE): ``"auto"`` takes the native sample sums
        (:func:`ufm.kernels.native.ufm_schur_sums`) where they apply (float64 on CPU, library
        available) and the XLA scan otherwise; ``"native"`` requires them, ``"xla"`` keeps the
        scan (the reference of the tests). MSE has one shared ``D_i`` in closed form and no
        native path (``"native"`` is refused)."""
        if kernel not in ("auto", "native", "xla"):
            raise ValueError(f"kernel must be 'auto', 'native' or 'xla', got {kernel!r}")
        if kernel == "native" and self.Pr is None:
            raise ValueError(
                "kernel='native': the native Schur sums are for cross-entropy (MSE "
                "shares one D_i in closed form)"
            )
        K, d = self.W.shape
        N = self.num_samples
        dtype = self.A.dtype
        W, H, G = self.W, self.H, self.G
        if self.Pr is None:  # MSE: shared D_i = W^T W / N + lambda_H I, P_i = W / N
            C = jnp.linalg.inv(W.T @ W / N + (self.lambda_H - sigma) * jnp.eye(d, dtype=dtype))
            C = 0.5 * (C + C.T)
            U = W @ C / N
            R = U @ W.T / N
            T2 = jnp.einsum("km,jl->kjlm", U, H @ G.T).reshape(K * d, K * d)
            WW = jnp.einsum("kl,jm->kjlm", R, H @ H.T) + jnp.einsum("kl,jm->kjlm", G @ G.T, C)
            WW = WW.reshape(K * d, K * d) + T2 + T2.T
            Wb1 = jnp.einsum("kl,j->kjl", R, jnp.sum(H, 1))
            Wb2 = jnp.einsum("k,lj->kjl", jnp.sum(G, 1), U)
            bb = N * R
            Cinv = C
        else:
            WW, Wb1, Wb2, bb, Cinv = self._schur_ce(sigma, kernel)
        if self.has_bias:
            Wb = (Wb1 + Wb2).reshape(K * d, K)
            T = jnp.block([[WW, Wb], [Wb.T, bb]])
        else:
            T = WW
        P = self.A.shape[0]
        S = self.A - sigma * jnp.eye(P, dtype=dtype) - T
        return 0.5 * (S + S.T), Cinv

    def _schur_ce(self, sigma, kernel):
        K, d = self.W.shape
        N = self.num_samples
        W, lH = self.W, self.lambda_H
        dtype = W.dtype
        native = kernel != "xla" and schur_supports(K, d, dtype)
        if kernel == "native" and not native:
            why = unavailable_reason("schur") or "it takes float64 on CPU with K, d <= 64"
            raise ValueError(f"kernel='native': the native Schur sums do not apply here ({why})")
        if native:  # the inverses stay implicit: the shift, applied by ufm_cinv_apply
            shift = jnp.asarray(lH - sigma, dtype)
            sums = ufm_schur_sums(W, self.Hc, self.Gc, self.Pc, shift, N)
            return self._assemble(*sums, shift)
        eye_d = jnp.eye(d, dtype=dtype)[:, :, None]
        WW2t = (W[:, :, None] * W[:, None, :]).reshape(K, d * d).T  # rows (a, b): W[:, a] W[:, b]

        def chunk(carry, xs):
            h, g, p = xs  # (d, c), (K, c), (K, c): batch on the last axis
            c = h.shape[-1]
            q = W.T @ p  # q_i = W^T p_i
            D = (WW2t @ p).reshape(d, d, c) - q[:, None] * q[None, :]  # N (D_i - lambda_H I)
            # C_i = (D_i - sigma I)^{-1}: Gauss-Jordan vectorised over the samples (ufm.kernels)
            C = spd_inverse_batched_last(D / N + (lH - sigma) * eye_d)
            # P_i = diag(p_i) (W - 1 q_i^T) / N, so with V_i = W C_i (one GEMM over the chunk):
            # U_i = P_i C_i = diag(p_i) (V_i - 1 (C_i q_i)^T) / N and, with s_i = W C_i q_i,
            # R_i = U_i P_i^T = diag(p_i) (W C_i W^T - s_i 1^T - 1 s_i^T + q_i^T C_i q_i) diag(p_i)
            # / N^2
            V = (W @ C.reshape(d, d * c)).reshape(K, d, c)
            Cq = _small_matvec(C, q)  # (d, c), C_i symmetric
            U = p[:, None, :] * (V - Cq[None]) / N  # (K, d, c)
            WCW = (W @ jnp.swapaxes(V, 0, 1).reshape(d, K * c)).reshape(K, K, c)
            sv = W @ Cq  # (K, c): V_i q_i = W C_i q_i
            t = _small_dot(q, Cq)  # (c,)
            R = p[:, None] * p[None, :] * (WCW - sv[:, None] - sv[None, :] + t) / N**2
            T1, T2, T3, Wb1, Wb2, bb = carry
            T1 = T1 + _dot_last(_triu_rows(R), _triu_rows(h[:, None] * h[None, :]))
            T2 = T2 + _dot_last(U.reshape(K * d, c), (h[:, None] * g[None, :]).reshape(d * K, c))
            T3 = T3 + _dot_last(_triu_rows(g[:, None] * g[None, :]), _triu_rows(C))
            if self.has_bias:
                Wb1 = Wb1 + _dot_last(R.reshape(K * K, c), h)
                Wb2 = Wb2 + _dot_last(g, U.reshape(K * d, c))
                bb = bb + jnp.sum(R, axis=-1)
            return (T1, T2, T3, Wb1, Wb2, bb), C

        nK, nd = K * (K + 1) // 2, d * (d + 1) // 2
        z = lambda *s: jnp.zeros(s, dtype)  # noqa: E731
        init = (z(nK, nd), z(K * d, d * K), z(nK, nd), z(K * K, d), z(K, K * d), z(K, K))
        (T1, T2, T3, Wb1, Wb2, bb), Cs = jax.lax.scan(chunk, init, (self.Hc, self.Gc, self.Pc))
        return self._assemble(T1, T2, T3, Wb1, Wb2, bb, Cs)

    def _assemble(self, T1, T2, T3, Wb1, Wb2, bb, Cs):
        """The blocks of ``sum_i B_i C_i B_i^T`` from the sample sums (packed triangles)."""
        K, d = self.W.shape
        T1 = _unpack_kron(T1, K, d)
        T2 = T2.reshape(K, d, d, K).transpose(0, 2, 3, 1)  # [k, m, j, l] -> [k, j, l, m]
        T3 = _unpack_kron(T3, K, d)
        WW = (T1 + T2 + T2.transpose(2, 3, 0, 1) + T3).reshape(K * d, K * d)
        Wb1 = Wb1.reshape(K, K, d).transpose(0, 2, 1)
        Wb2 = Wb2.reshape(K, K, d).transpose(0, 2, 1)
        return WW, Wb1, Wb2, bb, Cs

    def apply_cinv(self, Cinv, Y):
        """``(D_i - sigma I)^{-1} y_i`` for every sample, ``Cinv`` from :meth:`schur`: the shared
        inverse (MSE), the per-sample inverses in chunks (CE, XLA) or the shift ``lambda_H -
        sigma`` (CE, native: :func:`ufm.kernels.native.ufm_cinv_apply` factors again)."""
        if Cinv.ndim == 2:
            return Cinv @ Y
        N = Y.shape[1]
        if Cinv.ndim == 0:
            c = self.Pc.shape[-1]
            out = ufm_cinv_apply(self.W, self.Pc, _chunks(Y, c), Cinv, N)  # (nc, d, c)
            return jnp.moveaxis(out, 0, 1).reshape(Y.shape[0], -1)[:, :N]
        nc, d, _, c = Cinv.shape
        out = jax.vmap(_small_matvec)(Cinv, _chunks(Y, c))  # (nc, d, c)
        return jnp.moveaxis(out, 0, 1).reshape(d, nc * c)[:, :N]


def _chunks(X, c):
    """``(r, N)`` -> zero-padded chunks ``(ceil(N / c), r, c)``, the samples on the last axis."""
    r, N = X.shape
    nc = -(-N // c)
    return jnp.moveaxis(jnp.pad(X, ((0, 0), (0, nc * c - N))).reshape(r, nc, c), 1, 0)


def _small_matvec(X, y):
    """``out[:, i] = X[:, :, i]^T y[:, i]`` for ``X (s, r, c)``, ``y (s, c)`` (an unrolled sum of
    elementwise products: XLA:CPU reduces slowly over a leading axis)."""
    out = X[0] * y[0]
    for a in range(1, X.shape[0]):
        out = out + X[a] * y[a]
    return out


def _colsum(X):
    """Column sums of ``X (r, N)`` by a matmul with ones (XLA:CPU reduces slowly over a leading
    axis; see :func:`_small_matvec`)."""
    return (jnp.ones((1, X.shape[0]), X.dtype) @ X)[0]


def _small_dot(x, y):
    """``sum_a x[a] * y[a]`` over the leading axis, unrolled (see :func:`_small_matvec`)."""
    return _small_matvec(x[:, None], y)[0]


def _triu_rows(X):
    """``X (n, n, c)`` -> its upper triangle ``(n (n + 1) / 2, c)`` in ``np.triu_indices`` order
    (contiguous row slices, no gather)."""
    return jnp.concatenate([X[k, k:] for k in range(X.shape[0])], axis=0)


def _dot_last(X, Y):
    """``X @ Y^T`` for ``X (r, c)``, ``Y (s, c)``: a GEMM contracting the sample axis."""
    return jax.lax.dot_general(X, Y, (((1,), (1,)), ((), ())))


def ufm_split_features(spec: UFMSpec, params: UFMParams) -> FeatureSplit:
    """The UFM's per-sample split for the block-arrow structure: ``theta = (W, b)``, features
    ``H``."""
    return FeatureSplit((params.W, params.b), params.H, lambda th, F: UFMParams(th[0], F, th[1]))


def ufm_block_arrow(spec: UFMSpec, params: UFMParams, sample_chunk: int) -> UFMBlockArrow:
    """The UFM block-arrow structure in closed form (the system's ``block_arrow`` hook)."""
    W, H = params.W, params.H
    K, d = W.shape
    N = H.shape[1]
    if (K, d, N) != (spec.K, spec.d, spec.N):
        raise SpecError(
            f"params shapes W {W.shape}, H {H.shape} do not match spec (K, d, N) = "
            f"({spec.K}, {spec.d}, {spec.N})"
        )
    dtype = W.dtype
    lW, lH = spec.lambda_W, spec.lambda_H
    if is_concrete(lH) and not float(lH) > 0:
        raise SpecError(
            f"lambda_H must be > 0 for the UFM block-arrow fast path (got lambda_H={lH!r}): it "
            "factors D_i - sigma I >= (lambda_H - sigma) I by Cholesky; use method='autodiff' "
            "(ufm.hessian.block_arrow, exact for any lambda_H) or the dense Hessian"
        )
    Z = logits(params)
    G = fit_grad(Z, spec.loss, spec.n)
    eyeK = jnp.eye(K, dtype=dtype)
    if spec.loss == "ce":
        p = jax.nn.softmax(Z, axis=0)
        c = min(sample_chunk, N)
        Hc, Gc, Pc = _chunks(H, c), _chunks(G, c), _chunks(p, c)
        nK, nd = K * (K + 1) // 2, d * (d + 1) // 2

        def chunk(carry, xs):
            h, pc = xs  # (d, c), (K, c)
            hh = _triu_rows(h[:, None] * h[None, :])
            pp = pc[:, None] * pc[None, :]
            a, b_, e, f = carry
            return (
                a + _dot_last(pc, hh),
                b_ + _dot_last(_triu_rows(pp), hh),
                e + _dot_last(pc, h),
                f + _dot_last(pp.reshape(K * K, -1), h),
            ), None

        init = (
            jnp.zeros((K, nd), dtype),
            jnp.zeros((nK, nd), dtype),
            jnp.zeros((K, d), dtype),
            jnp.zeros((K * K, d), dtype),
        )
        (p_hh, pp_hh, p_h, pp_h), _ = jax.lax.scan(chunk, init, (Hc, Pc))
        _, id_ = _triu(d)
        AWW = jnp.einsum("kl,kjm->kjlm", eyeK, p_hh[:, id_]) - _unpack_kron(pp_hh, K, d)
        AWb = jnp.einsum("kl,kj->kjl", eyeK, p_h) - pp_h.reshape(K, K, d).transpose(0, 2, 1)
        Abb = jnp.diag(jnp.sum(p, axis=1)) - p @ p.T
        AWW, AWb, Abb = AWW / N, AWb / N, Abb / N
        if d >= K:  # rank W^T Hz_i W <= K - 1 < d, so lambda_min(D_i) = lambda_H exactly
            D_min = jnp.asarray(lH, dtype)
        else:
            q = p.T @ W  # (N, d)
            D = (jnp.einsum("ik,ka,kb->iab", p.T, W, W) - q[:, :, None] * q[:, None, :]) / N
            D_min = lH + jnp.min(jnp.linalg.eigvalsh(D))
        Pr = p
    else:
        Hc = Gc = Pc = Pr = None
        AWW = jnp.einsum("kl,jm->kjlm", eyeK, H @ H.T / N)
        AWb = jnp.einsum("kl,j->kjl", eyeK, jnp.sum(H, axis=1) / N)
        Abb = eyeK
        D_min = lH + jnp.linalg.eigvalsh(W.T @ W / N)[0]
    A = AWW.reshape(K * d, K * d) + lW * jnp.eye(K * d, dtype=dtype)
    if spec.has_bias:
        lb = spec.lambda_b if spec.bias == "regularized" else 0.0
        AWb = AWb.reshape(K * d, K)
        A = jnp.block([[A, AWb], [AWb.T, Abb + lb * eyeK]])
    A = 0.5 * (A + A.T)
    # a traced lambda_H <= 0 cannot be rejected above: poison the pole so that every result is
    # nan (converged=False) instead of a silently wrong inertia
    D_min = jnp.where(jnp.asarray(lH, dtype) > 0, D_min, jnp.nan)
    return UFMBlockArrow(
        A=A, W=W, H=H, G=G, Pr=Pr, Hc=Hc, Gc=Gc, Pc=Pc, lambda_H=jnp.asarray(lH, dtype), D_min=D_min
    )


#: The spec fields the fused kernel knows; a spec with any other field away from its default
#: (e.g. per-class sizes) goes through ``jax.value_and_grad(ufm.loss)`` instead.
_FUSED_FIELDS = frozenset(
    {"K", "n", "d", "loss", "bias", "dtype", "lambda_W", "lambda_H", "lambda_b"}
)


def _fused_applies(spec) -> bool:
    for f in dataclasses.fields(spec):
        if f.name in _FUSED_FIELDS:
            continue
        default = f.default
        if default is dataclasses.MISSING or getattr(spec, f.name) != default:
            return False
    return spec.N == spec.K * spec.n


def ufm_fused_value_and_grad(spec: UFMSpec, params: UFMParams):
    """``(f, grad f)`` of the UFM by the fused kernel :func:`ufm.kernels.ufm_value_and_grad`
    (registered as the UFM's fast path of :func:`ufm.kernels.value_and_grad`, which
    :func:`ufm.optimize` calls; it agrees with ``jax.value_and_grad(ufm.loss)`` to rounding).

    Only for the balanced model it implements (fields ``K, n, d, loss, bias, dtype`` and the
    lambdas): a spec with any further field away from its default, or ``N != K n``, gets
    ``jax.value_and_grad(ufm.loss)``, the system's own objective.
    """
    if not _fused_applies(spec):
        return jax.value_and_grad(ufm_loss, argnums=1)(spec, params)
    lb = spec.lambda_b if spec.bias == "regularized" else None
    value, (gW, gH, gb) = ufm_value_and_grad(
        params.W,
        params.H,
        params.b,
        n=spec.n,
        loss=spec.loss,
        lambda_W=spec.lambda_W,
        lambda_H=spec.lambda_H,
        lambda_b=lb,
    )
    return value, UFMParams(gW, gH, gb)


register_value_and_grad(UFMSpec, ufm_fused_value_and_grad)
