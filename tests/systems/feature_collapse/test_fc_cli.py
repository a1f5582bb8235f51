"""`ufm feature-collapse` end to end on the tiny preset: the results folder, figures, resume,
one-line errors; the registered objective and the summary verdicts."""

import json
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import PNG, assert_one_line_error, main_in_process

import ufm
from ufm.cli.main import main
from ufm.systems.feature_collapse import (
    PRESETS,
    cached_data,
    checkpoint_epochs,
    collapse_verdict,
    fc_objective,
    init_params,
    load_embeddings,
    make_loss_fn,
    make_optimizer,
    run_job,
    summary_entries,
    theory,
)

EPOCHS = 8
ARGS = ["feature-collapse", "--preset", "tiny", "--epochs", str(EPOCHS), "--checkpoints", "2"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("fc") / "res"
    rc = main([*ARGS, "--seeds", "1", "--out", str(out), "--quiet"])
    assert rc == 0
    return out


def test_cli_writes_rows_figures_and_summary(tiny_run, capsys):
    out = tiny_run
    rows = ufm.load_results(out)
    tiny, tiny_ln = PRESETS["tiny"], PRESETS["tiny-ln"]
    cps = checkpoint_epochs(EPOCHS, 2)
    assert cps == [0, 1, 2, 4, 8]
    # one row per configuration x seed x checkpoint, both configurations of the preset
    assert len(rows) == 2 * len(cps) and set(rows.model) == {"feature_collapse"}
    assert set(rows.layernorm) == {False, True} and set(rows.seed) == {0}
    for (_, _), sel in rows.groupby(["config_hash", "seed"]):
        assert sorted(sel.epoch) == cps
    assert set(rows.status) == {"max_steps"}  # ufm.Status name of "finished its epochs"
    assert set(rows.epochs) == {EPOCHS} and set(rows.n_w) == {120}  # spec fields are columns
    # predictions as columns, equal to the theory functions
    no_ln, ln = rows[~rows.layernorm], rows[rows.layernorm]
    t1 = theory.type1_optimum(3, 120, 64, 8, 1e-3)
    np.testing.assert_allclose(no_ln.predicted_w_norm, t1.w_norm, rtol=1e-12)
    np.testing.assert_allclose(no_ln.predicted_u_norm, t1.u_norm, rtol=1e-12)
    np.testing.assert_allclose(ln.predicted_u_norm, theory.type2_optimum(3, 64, 8, 32, 1e-3).b)
    assert set(no_ln.collapse_type) == {1} and set(ln.collapse_type) == {2}
    np.testing.assert_allclose(no_ln.w_norm_relerr, no_ln.w_norm_mean / t1.w_norm - 1)
    # at init: chance accuracy and loss log K; LayerNorm learns within 8 epochs
    start = rows[rows.epoch == 0]
    np.testing.assert_allclose(start.train_loss, math.log(64), rtol=1e-3)
    assert (start.test_acc < 0.1).all() and (ln[ln.epoch == EPOCHS].test_acc > 0.5).all()
    # the kept final embeddings are those of the last rows (norms recomputed in numpy)
    data = cached_data(tiny)
    for h, sel in rows[rows.epoch == EPOCHS].groupby("config_hash"):
        for seed, w_mean in zip(sel.seed, sel.w_norm_mean):
            W = load_embeddings(out, h, seed)
            assert W.shape == (120, 32) and W.dtype == np.float32
            norms = np.linalg.norm(W.astype(np.float64), axis=1)[data.seen]
            np.testing.assert_allclose(norms.mean(), w_mean, rtol=1e-5)
    # figures: the four of the issue, valid PNG files
    figs = sorted(p.name for p in (out / "figures").iterdir())
    assert figs == [
        "accuracy_loss_curves.png",
        "embeddings_pca.png",
        "norm_vs_frequency.png",
        "norms_measured_vs_predicted.png",
    ]
    import matplotlib.image

    for name in figs:
        path = out / "figures" / name
        assert path.read_bytes()[:8] == PNG
        assert matplotlib.image.imread(path).shape[0] > 100
    # summary: table and JSON entries
    text = (out / "summary.txt").read_text()
    assert "test acc" in text and "||u||" in text and "LayerNorm: test accuracy" in text
    entries = json.loads((out / "summary.json").read_text())
    assert [e["layernorm"] for e in entries] == [tiny.layernorm, tiny_ln.layernorm]
    last_ln = ln[ln.epoch == EPOCHS]
    assert entries[1]["test_acc"] == pytest.approx(last_ln.test_acc.mean())
    assert entries[1]["collapse_predicted"] == "II" and entries[0]["collapse_predicted"] == "I"
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["configs"]) == 2
    # every stored column is documented (Parquet metadata), spec fields aside
    stored = ufm.runs.store.column_docs(out)
    fields = set(ufm.runs.sweep_spec.spec_fields(tiny))
    assert not [c for c in rows.columns if c not in stored and c not in fields]


def test_rerun_skips_stored_seeds_and_extends(tiny_run, capsys):
    out = tiny_run
    before = sorted(p.name for p in (out / "data").iterdir())
    rows0 = ufm.load_results(out)
    assert main([*ARGS, "--seeds", "1", "--out", str(out), "--quiet", "--no-figures"]) == 0
    assert "2 seed run(s) were already in the folder" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "data").iterdir()) == before
    # one more seed of the configuration without LayerNorm: only seed 1 is trained
    job = run_job(
        "tiny",
        seeds=2,
        epochs=EPOCHS,
        checkpoints=2,
        layernorm=False,
        out=out,
        figures=False,
        quiet=True,
    )
    (h,) = job.hashes
    assert job.seeds_run == {h: [1]} and job.seeds_skipped == {h: [0]}
    rows = ufm.load_results(out)
    assert len(rows) == len(rows0) + len(checkpoint_epochs(EPOCHS, 2))
    old = rows0[rows0.config_hash == h].reset_index(drop=True)
    kept = rows[(rows.config_hash == h) & (rows.seed == 0)].reset_index(drop=True)
    np.testing.assert_array_equal(kept.test_acc, old.test_acc)
    new = rows[(rows.config_hash == h) & (rows.seed == 1)]
    assert not np.allclose(new.w_norm_mean, kept.w_norm_mean)  # another seed, another run
    assert len(job.rows) == 2 * len(checkpoint_epochs(EPOCHS, 2))


@pytest.mark.parametrize(
    "argv,text",
    [
        (["--preset", "huge"], "--preset"),
        (["--seeds", "0"], "--seeds"),
        (["--epochs", "-1"], "--epochs"),
        (["--checkpoints", "many"], "--checkpoints"),
        (["--layernorm", "yes"], "unrecognized arguments"),
    ],
)
def test_bad_options_give_one_line_errors(argv, text, capsys, tmp_path):
    rc, _, err = main_in_process(capsys, "feature-collapse", *argv, "--out", tmp_path / "x")
    assert_one_line_error(rc, err, re.escape(text))


def test_other_results_in_the_folder_are_refused_before_training(tiny_run, capsys):
    rc, _, err = main_in_process(capsys, *ARGS, "--epochs", "3", "--out", tiny_run)
    assert_one_line_error(rc, err, "--extend")


def test_help_shows_the_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["feature-collapse", "--help"])
    out = capsys.readouterr().out
    assert "(default: tiny)" in out and "zipf-gap" in out and "--no-layernorm" in out


@pytest.mark.parametrize("ln", [False, True])
def test_objective_is_what_sgd_minimises(ln):
    """One full-batch step of the paper's SGD (coupled weight decay) is a gradient step on the
    registered objective, and the objective is the mean CE plus (wd/2)||theta||^2."""
    spec = PRESETS["tiny"].replace(dtype="float64", layernorm=ln, weight_decay=0.01, lr=0.3)
    spec = spec.replace(batch_size=spec.n_train)
    params = init_params(spec.replace(init_scale_divisor=1.0), jax.random.key(5))
    data = cached_data(spec)
    batch = {"x": jnp.asarray(data.train_x), "y": jnp.asarray(data.train_y)}
    opt = make_optimizer(spec)
    objective = ufm.objective(spec)  # the registered hook

    @jax.jit
    def both(params):
        ce, grads = jax.value_and_grad(make_loss_fn(ln))(params, batch, None)
        f, g = jax.value_and_grad(objective)(params)
        return ce, f, opt.update(grads, opt.init(params), params)[0], g

    ce, f, updates, g = both(params)
    wd_w = 0.0 if ln else 0.01
    penalty = 0.005 * float(jnp.sum(params["U"] ** 2)) + 0.5 * wd_w * float(
        jnp.sum(params["W"] ** 2)
    )
    np.testing.assert_allclose(float(f), float(ce) + penalty, rtol=1e-13)
    assert float(fc_objective(spec, params)) == pytest.approx(float(f), rel=1e-13)
    for k in ("W", "U"):
        np.testing.assert_allclose(updates[k], -0.3 * g[k], rtol=1e-10, atol=1e-15)


def _entry_rows(**last):
    import pandas as pd

    base = {
        "config_hash": "h",
        "seed": [0, 0, 1, 1],
        "epoch": [0, 10, 0, 10],
        "status": "max_steps",
        "train_acc": [0.0, 1.0, 0.0, 1.0],
        "test_acc": [0.1, 0.7, 0.1, 0.9],
        "w_norm_mean": [0.01, 0.5, 0.01, 0.7],
        "w_norm_std": [0.0, 1.0, 0.0, 1.4],
        "u_norm_mean": 0.3,
        "phi_norm_mean": 0.6,
        "predicted_w_norm": math.nan,
        "predicted_u_norm": 0.25,
        "predicted_phi_norm": math.nan,
        "w_dir_collapse": [0.9, 0.05, 0.9, 0.07],
        "w_norm_mu_spearman": [0.0, 0.7, 0.0, 0.8],
    }
    base.update(last)
    return pd.DataFrame(base)


def test_summary_entries_and_verdicts():
    spec = PRESETS["zipf-gap"]
    (e,) = summary_entries(_entry_rows(), [spec], ["h"])
    assert e["seeds"] == 2 and e["epochs"] == 10 and e["failed"] == 0
    assert e["test_acc"] == pytest.approx(0.8) and e["test_acc_std"] == pytest.approx(0.1)
    assert e["test_acc_peak"] == pytest.approx(0.8) and e["test_acc_peak_epoch"] == 10
    assert e["w_norm_cv"] == pytest.approx(2.0) and e["u_norm_relerr"] == pytest.approx(0.2)
    assert e["collapse_predicted"] == "III" and e["collapse_measured"] == "III"
    assert math.isnan(e["w_norm_relerr"])
    # the other verdicts
    v = {"layernorm": False, "w_dir_collapse": 0.01, "w_norm_cv": 0.05, "w_norm_mu_spearman": 0}
    assert collapse_verdict(v) == "I"
    assert collapse_verdict({**v, "layernorm": True}) == "II"
    assert collapse_verdict({**v, "w_dir_collapse": 0.5}) == "none"
    assert collapse_verdict({**v, "w_dir_collapse": math.nan}) == "none"
    assert collapse_verdict({**v, "w_norm_cv": 0.5, "w_norm_mu_spearman": -0.2}) == "?"
    assert collapse_verdict({**v, "w_norm_cv": 0.5, "w_norm_mu_spearman": math.nan}) == "?"
    # frequency-ordered norms are type III even when their spread is small (type3 preset: 0.15)
    assert collapse_verdict({**v, "w_norm_cv": 0.15, "w_norm_mu_spearman": 0.99}) == "III"
