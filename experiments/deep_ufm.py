"""Deep UFM reproductions: deep neural collapse (DNC) versus low-rank solutions.

Papers:
    Sukenik, Lampert, Mondelli 2024, "Neural collapse versus low-rank bias: is deep neural collapse
    really optimal?" (arXiv 2405.14468): Fig. 2 (top), Fig. 3, Fig. 5.
    Sukenik, Mondelli, Lampert 2023, "Deep neural collapse is provably optimal for the deep
    unconstrained features model" (arXiv 2305.13165): the binary case, where GD reaches L_DNC.

Model: the deep ReLU UFM with MSE loss and no biases (``ufm.DeepUFMSpec``), equal weight decay
``lambda`` on ``H_1`` and every ``W_l``, full-batch gradient descent from ``ufm.init_params``
(``H_1 ~ N(0, 1)``, ``W_l ~ N(0, 1/fan_in)``; the origin is a strict local minimum for ``L >= 2``).

Settings the papers state: K = 10, L = 4, lambda = 0.004, width 30, GD with learning rate 0.5, 10
runs (Fig. 2); L in {3, 4, 5} (Fig. 3 left); L = 4 (Fig. 3 middle/right, Fig. 5); K in {3, 4, 5}
(Fig. 5). Settings they do not state, chosen here (all are options):
    --n 5            samples per class (N = 5 K); the DNC/SRG losses depend on n only via n
    lambda_H1
    --steps 200000   GD steps for Fig. 2 (full mode); sweeps use --sweep-steps 100000. GD on this
                     landscape is slow (rank reduction continues for 1e5+ steps at lr 0.5), so the
                     end points are "at the budget", not certified critical points: grad norms are
                     reported.
    --binary-lr 0.25 learning rate of the binary case: at L = 2, lr 0.5 diverges in the first
                     steps for about half of the seeds from this initialisation
    --tau 1e-3       relative threshold of the numerical rank, #{sigma_i > tau sigma_1}
    Fig. 3 left uses --ratio-lambda 1e-3 and n = --n so that L_DNC < 1/2 up to r = 12; the ratio of
    the constants c_SRG/c_DNC (``ufm.deep.srg_ratio``) is lambda- and n-free and is plotted too.
    Fig. 3 middle: lambda in --rank-lambdas (default 0.001..0.006); right: widths --widths.
    A seed "reached DNC" when its loss is within 1e-3 (relative) of L_DNC and every class-mean
    matrix H_1..H_L has rank K; "low-rank" when some H_l (l < L) has rank < K.

L_SRG is the loss of ``ufm.deep.srg_construction`` (our rank-r construction with optimised offsets):
an upper bound on the global minimum, not the paper's exact value. GD can end below it.

Usage:
    python experiments/deep_ufm.py                   # full mode, all figures, results/deep_ufm/
    python experiments/deep_ufm.py --fast            # smoke run, well under a minute on 2 cores
    python experiments/deep_ufm.py --only fig2 --seeds 20 --steps 400000 --out /tmp/dufm
Outputs: summary.json (numbers, settings, run times) and one .npz + .png per figure.
Measured on 2 CPU cores shared with other jobs (load average ~6): full mode 1577 s (fig2 111 s,
fig3_rank 374 s, fig3_width 1000 s, fig5 58 s, binary 30-47 s); --fast 47 s wall, 32 s CPU.
Each run records its own times in summary.json ("runtime_s").
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import sys
import time

import jax
import numpy as np

FIGURES = ("fig2", "fig3_ratio", "fig3_rank", "fig3_width", "fig5", "binary")


@dataclasses.dataclass
class Config:
    out: str = "results/deep_ufm"
    fast: bool = False
    only: tuple = FIGURES
    K: int = 10
    L: int = 4
    n: int = 5
    width: int = 30
    lam: float = 4e-3
    lr: float = 0.5
    binary_lr: float = 0.25
    optimizer: str = "gd"
    seeds: int = 10
    steps: int = 200_000
    sweep_seeds: int = 10
    sweep_steps: int = 100_000
    record_every: int = 1000
    tau: float = 1e-3
    dtype: str = "float64"
    ratio_lambda: float = 1e-3
    rank_lambdas: tuple = (1e-3, 2e-3, 3e-3, 4e-3, 5e-3, 6e-3)
    widths: tuple = (10, 15, 20, 30, 50, 100)
    small_K: tuple = (3, 4, 5)
    binary_L: tuple = (2, 3, 4)
    key: int = 0

    @classmethod
    def fast_defaults(cls, **kw):
        base = dict(
            fast=True,
            seeds=4,
            steps=10_000,
            sweep_seeds=3,
            sweep_steps=4_000,
            record_every=500,
            rank_lambdas=(2e-3, 6e-3),
            widths=(10, 30),
            small_K=(3,),
            binary_L=(3,),
        )
        base.update(kw)
        return cls(**base)


# -- helpers --------------------------------------------------------------------------------------
def _ufm():
    import ufm

    return ufm


@functools.cache
def _recorder(tau: float, metrics: bool):
    """A stable ``record`` function for ``ufm.optimize`` (static argument: cached per setting)."""
    ufm = _ufm()

    def record(spec, params):
        out = dict(ufm.deep.deep_loss_terms(spec, params))
        if metrics:
            m = ufm.deep.deep_metrics(spec, params, tau=tau)
            out.update({k: v for k, v in m.items() if k.startswith(("dnc1", "rank_H"))})
        return out

    return record


def _spec(cfg: Config, **kw):
    ufm = _ufm()
    args = dict(
        K=cfg.K,
        n=cfg.n,
        L=cfg.L,
        widths=cfg.width,
        activation="relu",
        loss="mse",
        lambda_H1=cfg.lam,
        lambda_W=cfg.lam,
        dtype=cfg.dtype,
    )
    args.update(kw)
    if "lam" in args:
        lam = args.pop("lam")
        args.update(lambda_H1=lam, lambda_W=lam)
    return ufm.DeepUFMSpec(**args)


def run(cfg: Config, spec, seeds: int, steps: int, record=None, key_offset: int = 0, lr=None):
    """GD from ``seeds`` random starts; returns the ``ufm.OptimizeResult``."""
    ufm = _ufm()
    key = jax.random.fold_in(jax.random.key(cfg.key), key_offset)
    p0 = jax.jit(lambda k: ufm.init_batch(spec, k, seeds))(key)
    every = min(cfg.record_every, steps)
    chunk = max(every, (min(10_000, steps) // every) * every)
    return ufm.optimize(
        spec,
        p0,
        optimizer=ufm.make_optimizer(cfg.optimizer, lr or cfg.lr),
        max_steps=steps,
        tol=1e-10,
        chunk=chunk,
        record_every=every,
        record=record,
    )


def final_metrics(spec, params, tau: float) -> dict:
    ufm = _ufm()
    m = jax.jit(jax.vmap(lambda p: ufm.deep.deep_metrics(spec, p, tau=tau)))(params)
    return {k: np.asarray(v) for k, v in m.items()}


def class_mean_spectra(spec, params) -> list:
    """Singular values of the uncentred class means of H_1..H_L, one ``(S, min(d_l, K))`` array per
    layer."""
    ufm = _ufm()
    cm = jax.jit(jax.vmap(lambda p: ufm.deep.deep_class_means(spec, p)))(params)
    return [np.linalg.svd(np.asarray(M), compute_uv=False) for M in cm.H]


def classify(spec, res, metrics, l_dnc) -> np.ndarray:
    """Per seed: 'dnc' (loss within 1e-3 of L_DNC, all ranks K), 'below' (< L_DNC), 'failed'
    (diverged / NaN), 'other'."""
    ufm = _ufm()
    loss = np.asarray(res.loss)
    failed = np.isin(np.asarray(res.status), [int(ufm.Status.DIVERGED), int(ufm.Status.NAN)])
    ranks = np.stack([metrics[f"rank_H{l}"] for l in range(1, spec.L + 1)], axis=1)
    full = (ranks == spec.K).all(axis=1)
    dnc = full & (np.abs(loss - l_dnc) <= 1e-3 * l_dnc)
    below = loss < l_dnc * (1 - 1e-6)
    return np.where(failed, "failed", np.where(dnc, "dnc", np.where(below, "below", "other")))


def _savefig(fig, cfg: Config, name: str):
    path = os.path.join(cfg.out, f"{name}.png")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def _f(x):
    return [float(v) for v in np.ravel(x)]


# -- Fig. 2 (top) ---------------------------------------------------------------------------------
def fig2(cfg: Config) -> dict:
    """K = 10, L = 4, lambda = 0.004, width 30: loss vs iteration, DNC1 per layer, class-mean
    spectra."""
    import matplotlib.pyplot as plt

    ufm = _ufm()
    spec = _spec(cfg)
    l_dnc, l_srg = float(ufm.deep.dnc_loss(spec)), float(ufm.deep.srg_loss(spec))
    res = run(cfg, spec, cfg.seeds, cfg.steps, record=_recorder(cfg.tau, True))
    loss = np.asarray(res.loss)
    m = final_metrics(spec, res.params, cfg.tau)
    spectra = class_mean_spectra(spec, res.params)
    kind = classify(spec, res, m, l_dnc)
    np.savez(
        os.path.join(cfg.out, "fig2.npz"),
        steps=res.trace_steps,
        loss=res.trace["loss"],
        l_dnc=l_dnc,
        l_srg=l_srg,
        final_loss=loss,
        **{f"trace_{k}": v for k, v in res.trace.items() if k != "loss"},
        **{f"sv_H{l + 1}": s for l, s in enumerate(spectra)},
    )

    fig, ax = plt.subplots(1, 3, figsize=(15, 4))
    t, tr = res.trace_steps, res.trace["loss"]
    mu, sd = tr.mean(1), tr.std(1)
    ax[0].plot(t, tr, color="0.7", lw=0.6)
    ax[0].plot(t, mu, color="C0", label=f"GD, mean of {cfg.seeds} seeds")
    ax[0].fill_between(t, mu - sd, mu + sd, color="C0", alpha=0.25)
    ax[0].axhline(l_dnc, color="C3", ls="--", label=f"$L_{{DNC}}$ = {l_dnc:.4f}")
    ax[0].axhline(l_srg, color="C2", ls=":", label=f"$L_{{SRG}}$ = {l_srg:.4f} (upper bound)")
    ax[0].set_ylim(min(tr[-1].min(), l_srg) * 0.95, l_dnc * 1.25)
    ax[0].set(
        xlabel="iteration", ylabel="loss", title=f"K={spec.K}, L={spec.L}, $\\lambda$={cfg.lam}"
    )
    ax[0].legend(fontsize=8)
    for l in range(1, spec.L + 1):
        ax[1].semilogy(
            t, np.median(res.trace[f"dnc1_quot_H{l}"], axis=1), color=f"C{l - 1}", label=f"$H_{l}$"
        )
        ax[1].semilogy(
            t, np.median(res.trace[f"dnc1_pinv_H{l}"], axis=1), color=f"C{l - 1}", ls=":", lw=0.8
        )
    ax[1].set(
        xlabel="iteration",
        ylabel="DNC1 (median over seeds)",
        title="DNC1 per layer: Tr$\\Sigma_W$/Tr$\\Sigma_B$ (solid), "
        "Tr($\\Sigma_W\\Sigma_B^+$)/K (dotted)",
    )
    ax[1].legend(fontsize=8)
    for l, s in enumerate(spectra):
        ax[2].semilogy(
            np.arange(1, s.shape[1] + 1) + 0.12 * l,
            (s / s[:, :1]).T,
            "o-",
            ms=3,
            lw=0.5,
            color=f"C{l}",
            label=[f"$H_{l + 1}$"] + [None] * (s.shape[0] - 1),
        )
    ax[2].axhline(cfg.tau, color="k", ls=":", lw=0.8)
    ax[2].set(
        xlabel="index i",
        ylabel="$\\sigma_i / \\sigma_1$ of class means",
        title="class-mean spectra at the end",
        ylim=(1e-8, 2),
    )
    ax[2].legend(fontsize=8)
    png = _savefig(fig, cfg, "fig2")
    ranks = {f"H{l}": m[f"rank_H{l}"].tolist() for l in range(1, spec.L + 1)}
    return dict(
        png=png,
        l_dnc=l_dnc,
        l_srg=l_srg,
        final_loss=_f(loss),
        grad_norm=_f(res.grad_norm),
        below_dnc=int(np.sum(loss < l_dnc)),
        below_srg=int(np.sum(loss < l_srg)),
        low_rank=int(
            np.sum(
                [
                    min(ranks[f"H{l}"][i] for l in range(1, spec.L)) < spec.K
                    for i in range(cfg.seeds)
                ]
            )
        ),
        kind=kind.tolist(),
        ranks=ranks,
        status=res.status_counts(),
        wall_s=res.wall_time,
    )


# -- Fig. 3 ---------------------------------------------------------------------------------------
def fig3_ratio(cfg: Config) -> dict:
    """L_SRG / L_DNC against r (K = C(r, 2)) for L = 3, 4, 5, and the ratio of the constants."""
    import matplotlib.pyplot as plt

    ufm = _ufm()
    rs = np.arange(3, 13)
    out = {}
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    for L in (3, 4, 5):
        loss_ratio, c_ratio = [], []
        for r in rs:
            K = int(r * (r - 1) // 2)
            spec = _spec(
                cfg, K=K, L=L, widths=tuple([int(r)] * (L - 1) + [K]), lam=cfg.ratio_lambda
            )
            loss_ratio.append(float(ufm.deep.srg_loss(spec)) / float(ufm.deep.dnc_loss(spec)))
            c_ratio.append(ufm.deep.srg_ratio(int(r), L))
        ax[0].plot(rs, loss_ratio, "o-", label=f"L={L}")
        ax[1].plot(rs, c_ratio, "o-", label=f"L={L}")
        out[f"L{L}"] = dict(loss_ratio=loss_ratio, constant_ratio=c_ratio)
    for a in ax:
        a.axhline(1, color="k", lw=0.8)
        a.set_xlabel("r  (K = r(r-1)/2)")
        a.legend()
    ax[0].set(ylabel="$L_{SRG}/L_{DNC}$", title=f"n={cfg.n}, $\\lambda$={cfg.ratio_lambda}")
    ax[1].set(ylabel="$c_{SRG}/c_{DNC}$", title="ratio of the constants (n, $\\lambda$ free)")
    np.savez(
        os.path.join(cfg.out, "fig3_ratio.npz"),
        r=rs,
        **{f"{k}_{kk}": np.array(vv) for k, v in out.items() for kk, vv in v.items()},
    )
    out["png"] = _savefig(fig, cfg, "fig3_ratio")
    out["r"] = rs.tolist()
    return out


def fig3_rank(cfg: Config) -> dict:
    """Average class-mean rank at the end against the weight decay (K = 10, L = 4)."""
    import matplotlib.pyplot as plt

    ufm = _ufm()
    rows, wall = [], 0.0
    for i, lam in enumerate(cfg.rank_lambdas):
        spec = _spec(cfg, lam=lam)
        res = run(cfg, spec, cfg.sweep_seeds, cfg.sweep_steps, key_offset=100 + i)
        wall += res.wall_time
        m = final_metrics(spec, res.params, cfg.tau)
        per_layer = [float(m[f"rank_H{l}"].mean()) for l in range(1, spec.L + 1)]
        l_dnc = float(ufm.deep.dnc_loss(spec))
        rows.append(
            dict(
                lam=lam,
                mean_rank_per_layer=per_layer,
                mean_rank_hidden=float(np.mean(per_layer[:-1])),
                below_dnc=int(np.sum(np.asarray(res.loss) < l_dnc)),
                l_dnc=l_dnc,
                final_loss=_f(res.loss),
                grad_norm_max=float(np.max(res.grad_norm)),
                status=res.status_counts(),
            )
        )
    fig, ax = plt.subplots(figsize=(5, 4))
    lams = [r["lam"] for r in rows]
    for l in range(cfg.L):
        ax.plot(lams, [r["mean_rank_per_layer"][l] for r in rows], "o-", label=f"$H_{l + 1}$")
    ax.plot(lams, [r["mean_rank_hidden"] for r in rows], "k--", label="mean over $H_1..H_{L-1}$")
    ax.set(
        xlabel="weight decay $\\lambda$",
        ylabel=f"average rank (tau={cfg.tau})",
        title=f"K={cfg.K}, L={cfg.L}, {cfg.sweep_seeds} seeds, {cfg.sweep_steps} steps",
    )
    ax.legend(fontsize=8)
    np.savez(
        os.path.join(cfg.out, "fig3_rank.npz"),
        lam=np.array(lams),
        rank=np.array([r["mean_rank_per_layer"] for r in rows]),
    )
    return dict(rows=rows, png=_savefig(fig, cfg, "fig3_rank"), wall_s=wall)


def fig3_width(cfg: Config) -> dict:
    """Fraction of seeds that reach DNC (and that end below L_DNC) against the width (K = 10, L =
    4)."""
    import matplotlib.pyplot as plt

    ufm = _ufm()
    rows, wall = [], 0.0
    for i, w in enumerate(cfg.widths):
        spec = _spec(cfg, widths=w)
        res = run(cfg, spec, cfg.sweep_seeds, cfg.sweep_steps, key_offset=200 + i)
        wall += res.wall_time
        m = final_metrics(spec, res.params, cfg.tau)
        l_dnc = float(ufm.deep.dnc_loss(spec))
        kind = classify(spec, res, m, l_dnc)
        rows.append(
            dict(
                width=w,
                p_dnc=float(np.mean(kind == "dnc")),
                p_below=float(np.mean(kind == "below")),
                p_other=float(np.mean(kind == "other")),
                final_loss=_f(res.loss),
                l_dnc=l_dnc,
                grad_norm_max=float(np.max(res.grad_norm)),
                status=res.status_counts(),
            )
        )
    fig, ax = plt.subplots(figsize=(5, 4))
    ws = [r["width"] for r in rows]
    ax.plot(ws, [r["p_dnc"] for r in rows], "o-", label="reached DNC")
    ax.plot(ws, [r["p_below"] for r in rows], "s--", label="below $L_{DNC}$ (low rank)")
    ax.set(
        xscale="log",
        xlabel="width",
        ylabel="fraction of seeds",
        ylim=(-0.05, 1.05),
        title=f"K={cfg.K}, L={cfg.L}, $\\lambda$={cfg.lam}, {cfg.sweep_seeds} seeds",
    )
    ax.legend(fontsize=8)
    np.savez(
        os.path.join(cfg.out, "fig3_width.npz"),
        width=np.array(ws),
        p_dnc=np.array([r["p_dnc"] for r in rows]),
        p_below=np.array([r["p_below"] for r in rows]),
    )
    return dict(rows=rows, png=_savefig(fig, cfg, "fig3_width"), wall_s=wall)


# -- Fig. 5 ---------------------------------------------------------------------------------------
def fig5(cfg: Config) -> dict:
    """K in {3, 4, 5}, L = 4: fit vs regularisation over iterations, class-mean Gram heat maps."""
    import matplotlib.pyplot as plt

    ufm = _ufm()
    Ks = cfg.small_K
    fig, ax = plt.subplots(
        len(Ks), 1 + cfg.L, figsize=(3.2 * (1 + cfg.L), 3.3 * len(Ks)), squeeze=False
    )
    fig.subplots_adjust(hspace=0.45)
    out, wall = {}, 0.0
    for i, K in enumerate(Ks):
        spec = _spec(cfg, K=K)
        res = run(
            cfg,
            spec,
            cfg.sweep_seeds,
            cfg.sweep_steps,
            record=_recorder(cfg.tau, False),
            key_offset=300 + i,
        )
        wall += res.wall_time
        l_dnc = float(ufm.deep.dnc_loss(spec))
        m = final_metrics(spec, res.params, cfg.tau)
        loss = np.asarray(res.loss)
        best = int(np.argmin(loss))
        t = res.trace_steps
        a = ax[i, 0]
        a.semilogy(t, res.trace["fit"][:, best], label="fit")
        a.semilogy(t, res.trace["reg"][:, best], label="regularisation")
        a.semilogy(t, res.trace["loss"][:, best], "k", lw=0.8, label="loss")
        a.axhline(l_dnc, color="C3", ls="--", lw=0.8, label="$L_{DNC}$")
        a.set(title=f"K={K}: seed {best}", xlabel="iteration")
        a.locator_params(axis="x", nbins=3)
        a.legend(fontsize=7)
        cm = jax.jit(lambda p: ufm.deep.deep_class_means(spec, p))(
            jax.tree_util.tree_map(lambda x: x[best], res.params)
        )
        grams = []
        for l, M in enumerate(cm.H):
            M = np.asarray(M)
            G = M.T @ M
            grams.append(G)
            im = ax[i, 1 + l].imshow(G / np.abs(G).max(), cmap="RdBu_r", vmin=-1, vmax=1)
            ax[i, 1 + l].set(
                title=f"$M_{l + 1}^T M_{l + 1}$ (rank {int(m[f'rank_H{l + 1}'][best])})",
                xticks=[],
                yticks=[],
            )
        fig.colorbar(im, ax=ax[i, -1], fraction=0.046)
        out[f"K{K}"] = dict(
            l_dnc=l_dnc,
            final_loss=_f(loss),
            below_dnc=int(np.sum(loss < l_dnc * (1 - 1e-6))),
            ranks={f"H{l}": m[f"rank_H{l}"].tolist() for l in range(1, spec.L + 1)},
            final_fit=_f(res.trace["fit"][-1]),
            final_reg=_f(res.trace["reg"][-1]),
            grad_norm_max=float(np.max(res.grad_norm)),
            status=res.status_counts(),
        )
        np.savez(
            os.path.join(cfg.out, f"fig5_K{K}.npz"),
            steps=t,
            fit=res.trace["fit"],
            reg=res.trace["reg"],
            loss=res.trace["loss"],
            **{f"gram_H{l + 1}": g for l, g in enumerate(grams)},
        )
    out["png"] = _savefig(fig, cfg, "fig5")
    out["wall_s"] = wall
    return out


# -- Sukenik 2023: the binary case ----------------------------------------------------------------
def binary(cfg: Config) -> dict:
    """K = 2: GD converges to L_DNC (DNC is optimal for binary classification, any L)."""
    import matplotlib.pyplot as plt

    ufm = _ufm()
    out, wall = {}, 0.0
    fig, ax = plt.subplots(figsize=(5, 4))
    for i, L in enumerate(cfg.binary_L):
        spec = _spec(cfg, K=2, L=L)
        res = run(cfg, spec, cfg.sweep_seeds, cfg.sweep_steps, key_offset=400 + i, lr=cfg.binary_lr)
        wall += res.wall_time
        l_dnc = float(ufm.deep.dnc_loss(spec))
        m = final_metrics(spec, res.params, cfg.tau)
        gap = np.asarray(res.loss) - l_dnc
        ax.semilogy(
            res.trace_steps,
            np.abs(res.trace["loss"] - l_dnc),
            color=f"C{i}",
            lw=0.7,
            label=[f"L={L}"] + [None] * (cfg.sweep_seeds - 1),
        )
        out[f"L{L}"] = dict(
            l_dnc=l_dnc,
            gap=_f(gap),
            grad_norm=_f(res.grad_norm),
            ranks={f"H{l}": m[f"rank_H{l}"].tolist() for l in range(1, L + 1)},
            dnc1_H1=_f(m["dnc1_pinv_H1"]),
            dnc2_HL=_f(m[f"dnc2_H{L}"]),
            status=res.status_counts(),
        )
    ax.set(
        xlabel="iteration",
        ylabel="|loss - $L_{DNC}$|",
        title=f"K=2, $\\lambda$={cfg.lam}, width {cfg.width}, lr {cfg.binary_lr}",
    )
    ax.legend(fontsize=8)
    out["png"] = _savefig(fig, cfg, "binary")
    out["wall_s"] = wall
    return out


# -- CLI ------------------------------------------------------------------------------------------
def parse_args(argv=None) -> Config:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", default=None, help="output folder (default results/deep_ufm)")
    p.add_argument("--fast", action="store_true", help="smoke-run settings (well under a minute)")
    p.add_argument("--only", default=None, help=f"comma-separated subset of {','.join(FIGURES)}")
    p.add_argument("--n", type=int, help="samples per class (default 5)")
    p.add_argument("--K", type=int, help="classes for Fig. 2/3 (default 10)")
    p.add_argument("--L", type=int, help="layers for Fig. 2/3 middle+right/5 (default 4)")
    p.add_argument("--width", type=int, help="width of every layer (default 30)")
    p.add_argument("--lam", type=float, help="weight decay of H_1 and every W_l (default 0.004)")
    p.add_argument("--lr", type=float, help="learning rate (default 0.5)")
    p.add_argument(
        "--binary-lr", type=float, help="learning rate of the binary case (default 0.25)"
    )
    p.add_argument("--optimizer", help="gd (default), momentum, nesterov or an optax name")
    p.add_argument("--seeds", type=int, help="seeds of Fig. 2 (default 10)")
    p.add_argument("--steps", type=int, help="GD steps of Fig. 2 (default 200000)")
    p.add_argument("--sweep-seeds", type=int, help="seeds per point of the sweeps (default 10)")
    p.add_argument("--sweep-steps", type=int, help="GD steps of the sweeps (default 100000)")
    p.add_argument("--record-every", type=int, help="trace interval in steps (default 1000)")
    p.add_argument("--tau", type=float, help="numerical-rank threshold (default 1e-3)")
    p.add_argument("--dtype", choices=("float32", "float64"), help="default float64")
    p.add_argument("--ratio-lambda", type=float, help="lambda of Fig. 3 left (default 1e-3)")
    p.add_argument("--rank-lambdas", help="comma-separated lambdas of Fig. 3 middle")
    p.add_argument("--widths", help="comma-separated widths of Fig. 3 right")
    p.add_argument("--small-K", help="comma-separated K of Fig. 5 (default 3,4,5)")
    p.add_argument("--binary-L", help="comma-separated L of the binary case (default 2,3,4)")
    p.add_argument("--key", type=int, help="PRNG key (default 0)")
    a = p.parse_args(argv)
    kw = {}
    for name in (
        "n",
        "K",
        "L",
        "width",
        "lam",
        "lr",
        "binary_lr",
        "optimizer",
        "seeds",
        "steps",
        "sweep_seeds",
        "sweep_steps",
        "record_every",
        "tau",
        "dtype",
        "ratio_lambda",
        "key",
        "out",
    ):
        v = getattr(a, name)
        if v is not None:
            kw[name] = v
    for name, conv in (
        ("rank_lambdas", float),
        ("widths", int),
        ("small_K", int),
        ("binary_L", int),
    ):
        v = getattr(a, name)
        if v is not None:
            kw[name] = tuple(conv(x) for x in v.split(","))
    if a.only is not None:
        only = tuple(x.strip() for x in a.only.split(",") if x.strip())
        bad = [x for x in only if x not in FIGURES]
        if bad:
            p.error(f"--only: unknown {bad}; choose from {','.join(FIGURES)}")
        kw["only"] = only
    if a.fast and "out" not in kw:
        kw["out"] = "results/deep_ufm_fast"
    return Config.fast_defaults(**kw) if a.fast else Config(**kw)


def main(argv=None) -> dict:
    cfg = parse_args(argv)
    if cfg.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    import matplotlib

    matplotlib.use("Agg")
    os.makedirs(cfg.out, exist_ok=True)
    summary = {
        "settings": {
            k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()
        },
        "runtime_s": {},
    }
    t_all = time.perf_counter()
    for name in cfg.only:
        t0 = time.perf_counter()
        summary[name] = globals()[name](cfg)
        summary["runtime_s"][name] = time.perf_counter() - t0
        print(f"[deep_ufm] {name}: {summary['runtime_s'][name]:.1f} s", file=sys.stderr, flush=True)
    summary["runtime_s"]["total"] = time.perf_counter() - t_all
    summary["versions"] = {
        "jax": jax.__version__,
        "ufm": _ufm().__version__,
        "device": str(jax.devices()[0]),
    }
    path = os.path.join(cfg.out, "summary.json")
    with open(path, "w") as f:
        json.dump(
            summary, f, indent=1, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)
        )
    print(f"[deep_ufm] wrote {path} ({summary['runtime_s']['total']:.1f} s)", file=sys.stderr)
    return summary


if __name__ == "__main__":
    main()
