"""Feature-collapse experiment on the tiny preset: it trains, vmap over seeds == loop, rows."""

import math

import numpy as np
import pytest

from ufm.systems.feature_collapse import (
    PRESETS,
    make_data,
    predictions,
    run_experiment,
    summarize,
    theory,
)

TINY = PRESETS["tiny"]
CHECKPOINTS = [100, 200]


@pytest.fixture(scope="module")
def rows():
    return run_experiment(TINY, seeds=[0, 1], checkpoints=CHECKPOINTS)


def test_tiny_preset_trains(rows):
    assert TINY.epochs == 300
    np.testing.assert_array_equal(rows["seed"], [0, 0, 0, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(rows["epoch"], [0, 100, 200, 300] * 2)
    assert all(len(v) == 8 for v in rows.values())
    np.testing.assert_array_equal(rows["status"], 0)
    start, end = rows["epoch"] == 0, rows["epoch"] == 300
    # loss from log K (nothing learned at init / 1000) to well below; accuracy from chance to ~1
    np.testing.assert_allclose(rows["train_loss"][start], math.log(64), rtol=1e-3)
    assert np.all(rows["train_loss"][end] < 0.5)
    assert np.all(np.isnan(rows["epoch_loss"][start])) and np.all(rows["epoch_loss"][end] < 0.5)
    assert np.all(rows["train_acc"][start] < 0.1) and np.all(rows["test_acc"][start] < 0.1)
    assert np.all(rows["train_acc"][end] == 1.0) and np.all(rows["test_acc"][end] > 0.9)
    # features collapse: concept scatter and directions shrink by orders of magnitude
    assert np.all(rows["w_trace_ratio"][end] < 0.01 * rows["w_trace_ratio"][start])
    assert np.all(rows["w_dir_collapse"][end] < 0.05)
    assert np.all(rows["w_pca_ratio"][end] < 0.2 * rows["w_pca_ratio"][start])
    assert np.all(rows["u_trace_ratio"][end] < 0.01 * rows["u_trace_ratio"][start])
    # the norms grow from ~1e-3 * sqrt(d) towards the type-I prediction
    opt = theory.type1_optimum(3, 120, 64, 8, 1e-3)
    np.testing.assert_allclose(rows["predicted_w_norm"], opt.w_norm)
    np.testing.assert_allclose(rows["predicted_u_norm"], opt.u_norm)
    assert np.all(rows["collapse_type"] == 1)
    assert np.all(rows["w_norm_mean"][start] < 0.01)
    assert np.all(
        (0.5 * opt.w_norm < rows["w_norm_mean"][end])
        & (rows["w_norm_mean"][end] < 1.1 * opt.w_norm)
    )
    np.testing.assert_allclose(rows["w_norm_relerr"], rows["w_norm_mean"] / opt.w_norm - 1)
    assert np.all(np.isnan(rows["w_norm_mu_spearman"]))  # uniform law: mu is constant
    assert np.all(rows["compile_time_s"] > 0) and np.all(
        rows["wall_time_s"] > rows["compile_time_s"]
    )
    summary = summarize(rows)
    assert summary["test_acc"][0] == pytest.approx(np.mean(rows["test_acc"][end]))


def test_vmap_over_seeds_equals_loop(rows):
    """Seed 1 trained alone == seed 1 trained next to seed 0 (every column, every checkpoint)."""
    alone = run_experiment(TINY, seeds=[1], checkpoints=CHECKPOINTS)
    sel = rows["seed"] == 1
    for name, col in alone.items():
        if name in ("wall_time_s", "compile_time_s"):
            continue
        np.testing.assert_allclose(col, rows[name][sel], rtol=1e-5, atol=1e-7, err_msg=name)


def test_predictions_per_collapse_type():
    ln = TINY.replace(layernorm=True)
    p = predictions(ln, make_data(ln))
    assert p["collapse_type"] == 2 and math.isnan(p["predicted_w_norm"])
    assert p["predicted_u_norm"] == pytest.approx(theory.type2_optimum(3, 64, 8, 32, 1e-3).b)
    assert p["predicted_phi_norm"] == pytest.approx(math.sqrt(32))
    z = TINY.replace(law="zipf")
    p = predictions(z, make_data(z))
    assert p["collapse_type"] == 3 and math.isnan(p["predicted_u_norm"]) and p["type3_r"] is None
    t3 = PRESETS["tiny"].replace(law="zipf", L=3, K=27, latents="all", nspl=20)
    data = make_data(t3)
    p = predictions(t3, data)
    sol = theory.type3_solve(data.mu, 3, 3, 1e-3)
    assert p["predicted_u_norm"] == sol.b
    np.testing.assert_allclose(p["predicted_w_norm"], sol.r[data.word_beta][data.seen].mean())


def test_seeds_argument_errors():
    with pytest.raises(ValueError, match="seeds"):
        run_experiment(TINY, seeds=[0, 0])
    with pytest.raises(ValueError, match="seeds"):
        run_experiment(TINY, seeds=[])
