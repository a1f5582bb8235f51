"""The landscape tables, the verdict and the summaries on hand-made rows (issue 10, items 7, 8).

Failed seeds (diverged, NaN, ending at inf) are excluded from every statistic and counted; "at f*"
is judged on the polished end point whatever the first-order status; advice is given only where it
applies; a configuration without closed form says so. No JAX compute: rows are built by hand, the
expected numbers counted by hand.
"""

import jax
import numpy as np
import pytest

import ufm
from ufm.report.summaries import class_summary, gap_quantiles, optimum_summary
from ufm.systems.ufm import LandscapeConfig, landscape_tables, verdict


def _rows(configs):
    """Rows of ``configs``: ``[(label, loss, f_star, [(status, f_gap, grad, class), ...])]``."""
    out = {k: [] for k in ("config_hash", "label", "loss", "source", "status", "f", "grad_norm")}
    more = {k: [] for k in ("f_star", "f_gap", "at_optimum", "at_optimum_rtol", "class")}
    more.update(lambda_min=[], curvature_bound=[], grad_tol=[], polished=[], nc1_pinv=[])
    for i, (label, loss, f_star, pts) in enumerate(configs):
        for status, gap, grad, cls in pts:
            f = (f_star if np.isfinite(f_star) else 0.1) + gap
            out["config_hash"].append(f"h{i}")
            out["label"].append(label)
            out["loss"].append(loss)
            out["source"].append("random")
            out["status"].append(status)
            out["f"].append(f)
            out["grad_norm"].append(grad)
            failed = status in ("diverged", "nan") or not np.isfinite(f)
            more["f_star"].append(f_star)
            more["f_gap"].append(np.nan if failed else f - f_star)  # masked by run_points
            more["at_optimum"].append(not failed and abs(f - f_star) <= 1e-8 * max(1, f_star))
            more["at_optimum_rtol"].append(1e-8)
            more["class"].append(cls)
            more["lambda_min"].append(np.nan if failed else 1e-3)
            more["curvature_bound"].append(np.nan)
            more["grad_tol"].append(1e-8)
            more["polished"].append(not failed and grad <= 1e-10)
            more["nc1_pinv"].append(np.nan if failed else 1e-20)
    return {
        k: np.asarray(v, dtype=object if k in ("class",) else None)
        for k, v in {**out, **more}.items()
    }


OK = ("max_steps", 1e-15, 5e-11, "global_min")


def test_failed_seeds_never_reach_a_statistic():
    """MSE: 3 diverged seeds at f - f* = 3.9e16 with |grad| = 1.1e13, 2 ending at inf (what a
    larger divergence threshold gives), 1 NaN; 4 good ones."""
    bad = [("diverged", 3.9e16, 1.1e13, "not_critical")] * 3
    inf = [("diverged", np.inf, np.inf, "non_finite")] * 2
    nan = [("nan", np.nan, np.nan, "non_finite")]
    rows = _rows([("mse-none K=3", "mse", 0.04, [OK] * 4 + bad + inf + nan)])
    rows["f_gap"][4:7] = 3.9e16  # even unmasked gaps of failed rows must not leak
    (e,) = optimum_summary(rows, metrics=("nc1_pinv",))
    assert e["runs"] == 10 and e["at_optimum"] == 4 and e["critical"] == 4
    assert e["max_abs_gap"] < 1e-14 and e["max_grad_norm"] == 5e-11 and e["nc1_pinv"] == 1e-20
    assert (e["excluded_diverged"], e["excluded_nan"], e["excluded_nonfinite"]) == (5, 1, 0)
    q = gap_quantiles(rows, np.ones(10, bool))
    assert max(q) < 1e-14
    (c,) = class_summary(rows, by=("config_hash",))
    assert c["global_min"] == 4 and c["not_critical"] == 0 and c["non_finite"] == 0
    assert c["excluded_diverged"] + c["excluded_nan"] == 6 and c["counterexamples"] == 0
    first, classes = landscape_tables(rows)
    line = first.splitlines()[2].split()
    assert line[-11:-5] == ["10", "0", "4", "6", "4", "4"]  # runs conv budget failed crit at f*
    assert "1.1e+13" not in first and "3.9e+16" not in first and "inf" not in first
    assert "undecid" in classes.splitlines()[0] and "nonfin" not in classes


def test_budget_runs_polished_to_the_optimum_count_as_at_f_star():
    rows = _rows([("ce-none K=3", "ce", 0.18, [OK] * 4)])
    first, _ = landscape_tables(rows)
    assert first.splitlines()[2].split()[-11:-5] == ["4", "0", "4", "0", "4", "4"]
    text = verdict(rows, LandscapeConfig())
    assert "4 of the 4 valid ones with a closed form end at the closed-form optimum" in text
    assert "4 used the step budget" in text and "4 global minima" in text
    assert "try more --steps" not in text and "lr" not in text


def test_advice_only_where_it_applies():
    ce = _rows([("ce-none K=3", "ce", 0.18, [OK] * 2 + [("diverged", 1e17, 1e13, "")] * 2)])
    text = verdict(ce, LandscapeConfig())
    assert "smaller --lr" in text and "MSE" not in text and "2 failed runs are left out" in text
    mse = _rows([("mse-none K=3", "mse", 0.04, [OK] * 2 + [("diverged", 1e17, 1e13, "")] * 2)])
    assert "GD on MSE needs lr < 2 / (1 + lambda_b)" in verdict(mse, LandscapeConfig())
    adam = LandscapeConfig(optimizer=ufm.systems.ufm.LANDSCAPE_OPTIMIZER.replace(name="adam"))
    assert "GD on MSE" not in verdict(mse, adam)
    stuck = _rows([("ce-none K=3", "ce", 0.18, [("max_steps", 1e-3, 1e-4, "not_critical")])])
    assert "did not polish to a critical point: try more --steps" in verdict(
        stuck, LandscapeConfig()
    )


def test_failed_rows_with_masked_closed_form_columns():
    """As run_points stores them: the closed_form columns of failed rows are masked (f* nan).
    They are failed runs, not runs without a closed form (the verdict once said "7 have no
    closed form at this d" for 7 diverged / NaN seeds), and a configuration whose seeds all
    failed has 0 at f*, not "n/a". NaN runs get their own explanation, not the --lr advice."""
    pts = [OK] * 2 + [("diverged", 1e17, 1e13, "not_critical")] * 2 + [("nan", 0.0, 1.0, "")]
    rows = _rows(
        [
            ("mse-none K=3", "mse", 0.04, pts),
            ("mse-reg K=3", "mse", 0.04, [("diverged", 1e17, 1e13, "not_critical")] * 3),
        ]
    )
    failed = np.isin(rows["status"], ["diverged", "nan"])
    rows["f_star"] = np.where(failed, np.nan, rows["f_star"])
    text = verdict(rows, LandscapeConfig())
    assert "have no closed form" not in text, text
    assert "2 of the 2 valid ones with a closed form end at the closed-form optimum" in text
    assert "5 diverged, 1 NaN; 6 failed runs are left out of every statistic" in text
    assert "smaller --lr" in text and "NaN runs had a non-finite start" in text
    first, _ = landscape_tables(rows)
    reg = first.splitlines()[3].split()
    assert reg[-11:-5] == ["3", "0", "0", "3", "0", "0"]  # runs conv budget failed crit at f*
    only_nan = _rows([("ce-none K=3", "ce", 0.18, [OK, ("nan", 0.0, 1.0, "")])])
    text = verdict(only_nan, LandscapeConfig())
    assert "--lr" not in text.split("NaN runs")[0] and "NaN runs had" in text


def test_no_closed_form_is_said_not_counted_as_a_miss():
    rows = _rows([("ce-none K=5 d=3", "ce", np.nan, [("max_steps", 0.0, 5e-11, "local_min")] * 3)])
    text = verdict(rows, LandscapeConfig())
    assert "no closed form at these d" in text and "0 of" not in text
    assert "3 local minima of undecided global status" in text
    first, _ = landscape_tables(rows)
    assert first.splitlines()[2].split()[-6] == "n/a"


def test_undecided_points_are_reported_never_as_counterexamples():
    rows = _rows([("ce-none K=3", "ce", 0.18, [OK] * 2 + [("max_steps", 0.0, 5e-11, "undecided")])])
    text = verdict(rows, LandscapeConfig())
    assert "1 undecided" in text and "0 spurious or degenerate." in text
    assert "COUNTEREXAMPLE" not in text
    (c,) = class_summary(rows, by=("config_hash",))
    assert c["undecided"] == 1 and c["counterexamples"] == 0


@pytest.mark.parametrize("rtol", [1e-8, 1e-4])
def test_at_f_star_uses_the_recorded_tolerance(rtol):
    """float32 end points (no 64-bit JAX) record at_optimum_rtol = 1e-4: a gap of 1e-6 is at f*
    for them, not for float64 ones."""
    rows = _rows([("ce-none K=3", "ce", 0.18, [("converged", 1e-6, 5e-11, "global_min")] * 2)])
    rows["at_optimum_rtol"] = np.full(2, rtol)
    (e,) = optimum_summary(rows)
    assert e["at_optimum"] == (2 if rtol == 1e-4 else 0)


def test_sweep_report_excludes_and_counts_failed_seeds(tmp_path, monkeypatch):
    """``ufm sweep report`` on the rows of the first test (the store read is replaced by them):
    the f - f* quantiles come from the 4 valid seeds only (no 3.9e16 q95, no seed at inf dropped
    silently) and the 6 failed seeds are counted as excluded."""
    import ufm.report.sweep as report

    bad = [("diverged", 3.9e16, 1.1e13, "not_critical")] * 3
    inf = [("diverged", np.inf, np.inf, "non_finite")] * 2
    rows = _rows([("mse-none K=3", "mse", 0.04, [OK] * 4 + bad + inf + [("nan", np.nan, 1, "")])])
    rows["f_gap"][4:7] = 3.9e16  # unmasked, as an old store would hold them
    monkeypatch.setattr(report, "_manifest", lambda folder: {"name": "t", "configs": {}})
    monkeypatch.setattr(report, "count_duplicates", lambda folder: 0)
    monkeypatch.setattr(report, "load_rows", lambda folder: rows)
    text = report.sweep_report(tmp_path, figures=False)
    status = text.split("```")[1].strip().splitlines()
    head = status[0].split()
    assert head[:8] == [
        "config",
        "hash",
        "seeds",
        "converged",
        "max_steps",
        "diverged",
        "nan",
        "excluded",
    ]
    assert head[8:13] == ["gap", "min", "q05", "median", "q95"]
    cells = status[2].split()
    # label (2 tokens), hash, seeds, converged, max_steps, diverged, nan, excluded, 5 quantiles, P
    assert cells[3:9] == ["10", "0", "4", "5", "1", "6"]
    assert all(abs(float(x)) < 1e-14 for x in cells[9:14]) and float(cells[14]) == 1.0
    assert "e+16" not in text and "inf" not in text


def test_d_below_the_minimiser_rank_is_a_valid_landscape_point():
    """``ufm landscape --d-offset -2`` (K = 4, d = 2: no closed form) was refused by the
    closed_form analysis' grid check, so item 8's "no closed form" verdict could never print. The
    check now keeps such points (f* = nan) and still rejects specs with no reference value."""
    from ufm.runs.analyses import analysis_check, closed_form_gap

    check = analysis_check("closed_form")
    for loss in ("ce", "mse"):
        check(ufm.UFMSpec(K=4, n=2, d=2, loss=loss))  # no error
    with pytest.raises(ufm.SpecError, match="mse"):
        check(ufm.DeepUFMSpec(K=3, n=2, L=2, widths=(3, 3), loss="ce"))
    spec = ufm.UFMSpec(K=4, n=2, d=2, loss="ce")
    p = ufm.init_batch(spec, jax.random.key(0), 2)
    cols = closed_form_gap(spec, ufm.runs.points_result(spec, p))
    assert np.isnan(cols["f_star"]).all() and not cols["at_optimum"].any()
    config = LandscapeConfig(K=(4,), d_offset=-2, variants=(("ce", "none"),), seeds=2)
    assert {s.d for s in config.specs()} == {2}
