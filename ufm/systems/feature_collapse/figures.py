"""The figure set of a feature-collapse job (Laurent, von Brecht, Bresson 2023, arXiv 2305.16162).

Every function returns a ``matplotlib.figure.Figure`` (nothing is shown or saved implicitly);
:func:`write_figures` saves them atomically into ``DIR/figures``. Configurations keep one colour
(:func:`ufm.report.figures.config_colors` of their labels) in every figure.

* :func:`plot_embedding_pca`: the first two principal components of the word representations
  ``phi(w)`` (after LayerNorm when it is on) of the words seen in training, coloured by concept,
  marker area by frequency: the paper's PCA pictures (one panel per configuration, first seed).
* :func:`plot_norm_vs_frequency`: ``||phi(w)||`` against the word's frequency in the training set,
  with the predicted norms (type I: one value; type II: ``sqrt(d)``; type III: ``r_beta``).
* :func:`plot_curves`: train and test accuracy and loss against the epoch (mean over seeds,
  min-max band), with and without LayerNorm when the job ran both.
* :func:`plot_norms`: measured mean norms against the epoch with the predictions as dashed lines.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...report.figures import config_colors, plt_module
from ...report.folder import save_figure
from .embeddings import load_embeddings
from .experiment import predictions
from .model import features
from .objective import cached_data, fc_label

__all__ = [
    "plot_curves",
    "plot_embedding_pca",
    "plot_norm_vs_frequency",
    "plot_norms",
    "write_figures",
]

_CONCEPT_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


def _new(figsize):
    return plt_module().figure(figsize=figsize, layout="constrained")


def _panels(n, width=4.2, height=3.8):
    fig = _new((max(width * n, 7.0), height))
    return fig, [fig.add_subplot(1, n, i + 1) for i in range(n)]


def _phi(spec, W):
    return np.asarray(features(np.asarray(W, np.float64), spec.layernorm, spec.ln_eps))


def plot_embedding_pca(items):
    """PCA scatter of ``phi(w)`` over the seen words, coloured by concept.

    ``items``: a list of ``(spec, W)`` with ``W`` the ``(n_w, d)`` final embedding of one seed.
    The title gives ``sigma_3 / sigma_2`` (0 for an exact collapse onto the 3-concept simplex).
    """
    fig, axes = _panels(len(items))
    labels = short_labels([spec for spec, _ in items])
    for ax, lab, (spec, W) in zip(axes, labels, items):
        data = cached_data(spec)
        seen = data.seen
        X = _phi(spec, W)[seen]
        Xc = X - X.mean(0)
        _, sv, vt = np.linalg.svd(Xc, full_matrices=False)
        P = Xc @ vt[:2].T
        size = 4 + 40 * data.train_counts[seen] / data.train_counts.max()
        for a in range(spec.n_c):
            sel = data.word_concept[seen] == a
            ax.scatter(
                P[sel, 0],
                P[sel, 1],
                s=size[sel],
                color=_CONCEPT_COLORS[a % len(_CONCEPT_COLORS)],
                alpha=0.6,
                label=f"concept {a}",
                edgecolors="none",
            )
        ratio = sv[spec.n_c - 1] / sv[spec.n_c - 2] if sv.size >= spec.n_c else float("nan")
        ax.set_title(f"{lab}: sigma_{spec.n_c}/sigma_{spec.n_c - 1} = {ratio:.2g}")
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
        ax.set_aspect("equal", adjustable="datalim")
    axes[0].legend(fontsize="small", markerscale=1.5)
    common = _common([spec for spec, _ in items])
    fig.suptitle(f"Word representations phi(w), {common} (seen words; area ~ frequency)")
    return fig


def plot_norm_vs_frequency(items):
    """``||phi(w)||`` of every seen word against its frequency (fraction of word positions of
    the training set), with the theory's predicted norms (``items`` as
    :func:`plot_embedding_pca`)."""
    fig, axes = _panels(len(items))
    labels = short_labels([spec for spec, _ in items])
    for ax, lab, (spec, W) in zip(axes, labels, items):
        data = cached_data(spec)
        seen = data.seen
        freq = data.train_counts / data.train_counts.sum()
        norms = np.linalg.norm(_phi(spec, W), axis=1)
        ax.scatter(
            freq[seen],
            norms[seen],
            s=8,
            c=[_CONCEPT_COLORS[a % 6] for a in data.word_concept[seen]],
            alpha=0.6,
            edgecolors="none",
        )
        pred = predictions(spec, data)
        if pred["type3_r"] is not None:
            x = data.mu / spec.n_c
            ax.plot(x, pred["type3_r"], "k-", lw=1.2, label="type III r_beta (at mu/n_c)")
        elif np.isfinite(pred["predicted_phi_norm"]):
            kind = {1: "type I", 2: "type II sqrt(d)", 3: "type III"}[pred["collapse_type"]]
            ax.axhline(pred["predicted_phi_norm"], color="k", ls="--", lw=1.2, label=kind)
        ax.set_xscale("log")
        ax.set_xlabel("word frequency in the training set")
        ax.set_ylabel("||phi(w)||" if spec.layernorm else "||w||")
        ax.set_title(lab)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    common = _common([spec for spec, _ in items])
    fig.suptitle(f"Norm against word frequency, {common} (colour: concept)")
    return fig


def short_labels(specs) -> list[str]:
    """Labels of the configurations in the figures: ``"no LayerNorm"`` / ``"LayerNorm"`` when
    they differ only in LayerNorm (and the epochs), otherwise :func:`.objective.fc_label`."""
    specs = list(specs)
    flat = {s.replace(layernorm=False, epochs=0, weight_decay_w=None) for s in specs}
    if len(specs) > 1 and len(flat) == 1 and len({s.layernorm for s in specs}) == len(specs):
        return ["LayerNorm" if s.layernorm else "no LayerNorm" for s in specs]
    return [fc_label(s) for s in specs]


def _common(specs) -> str:
    """The label parts shared by every configuration (for titles)."""
    parts = [fc_label(s).split() for s in specs]
    return " ".join(p for p in parts[0] if all(p in q for q in parts[1:])) or "feature collapse"


def _by_config(rows, specs, hashes):
    return [(spec, rows[rows["config_hash"] == h]) for spec, h in zip(specs, hashes)]


def _band(ax, sel, name, color, **kw):
    g = sel.groupby("epoch")[name]
    mean, lo, hi = g.mean(), g.min(), g.max()
    x = mean.index.to_numpy()
    (line,) = ax.plot(x, mean.to_numpy(), color=color, **kw)
    if sel["seed"].nunique() > 1:
        ax.fill_between(x, lo.to_numpy(), hi.to_numpy(), color=color, alpha=0.15, lw=0)
    return line


def plot_curves(rows, specs, hashes):
    """Accuracy and loss (train dashed, test solid) against the epoch, one colour per
    configuration; mean over seeds with a min-max band. Symmetric-log epoch axis, so that the
    first epochs (e.g. delayed generalisation) stay visible."""
    fig, (acc, loss) = _panels(2, 5.2, 4.0)
    labels = short_labels(specs)
    colors = config_colors(labels)
    for lab, (_, sel) in zip(labels, _by_config(rows, specs, hashes)):
        c = colors[lab]
        _band(acc, sel, "test_acc", c, label=f"{lab} test")
        _band(acc, sel, "train_acc", c, ls="--", label=f"{lab} train")
        _band(loss, sel, "test_loss", c, label=f"{lab} test")
        _band(loss, sel, "train_loss", c, ls="--", label=f"{lab} train")
    for ax in (acc, loss):
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlim(left=0)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    acc.set_ylabel("accuracy")
    acc.set_ylim(-0.02, 1.02)
    loss.set_ylabel("mean cross-entropy")
    loss.set_yscale("log")
    acc.legend(fontsize="x-small")
    fig.suptitle(f"Training curves, {_common(specs)} (mean over seeds, band: min-max)")
    return fig


def plot_norms(rows, specs, hashes):
    """Mean ``||w||`` (``||phi(w)||`` with LayerNorm) and mean ``||u_{k,l}||`` against the
    epoch, with the predicted values as dashed lines of the same colour; the legend gives the
    relative error at the last epoch."""
    fig, (wax, uax) = _panels(2, 5.2, 4.0)
    labels = short_labels(specs)
    colors = config_colors(labels)
    for lab, (spec, sel) in zip(labels, _by_config(rows, specs, hashes)):
        c = colors[lab]
        last = sel[sel["epoch"] == sel["epoch"].max()]
        for ax, q in ((wax, "phi" if spec.layernorm else "w"), (uax, "u")):
            pred = float(sel[f"predicted_{q}_norm"].iloc[0])
            meas = float(last[f"{q}_norm_mean"].mean())
            err = f" ({100 * (meas / pred - 1):+.1f}%)" if np.isfinite(pred) else ""
            _band(ax, sel, f"{q}_norm_mean", c, label=lab + err)
            if np.isfinite(pred):
                ax.axhline(pred, color=c, ls="--", lw=1)
    wax.set_ylabel("mean ||w|| over seen words (||phi(w)|| with LN)")
    uax.set_ylabel("mean ||u_{k,l}||")
    for ax in (wax, uax):
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlim(left=0)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small")
    fig.suptitle(f"Norms, {_common(specs)}: measured (solid), predicted (dashed)")
    return fig


def write_figures(folder, rows, specs, hashes) -> list[Path]:
    """Write the figure set into ``folder/figures`` (atomic PNGs); the embedding figures use the
    smallest stored seed of each configuration whose final embedding was kept."""
    figdir = Path(folder) / "figures"
    made = [
        save_figure(plot_curves(rows, specs, hashes), figdir / "accuracy_loss_curves.png"),
        save_figure(plot_norms(rows, specs, hashes), figdir / "norms_measured_vs_predicted.png"),
    ]
    items = []
    for spec, h in zip(specs, hashes):
        for seed in sorted(set(rows.loc[rows["config_hash"] == h, "seed"])):
            W = load_embeddings(folder, h, seed)
            if W is not None:
                items.append((spec, W))
                break
    if items:
        made.append(save_figure(plot_embedding_pca(items), figdir / "embeddings_pca.png"))
        made.append(save_figure(plot_norm_vs_frequency(items), figdir / "norm_vs_frequency.png"))
    return made
