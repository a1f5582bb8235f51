"""Minority collapse: the numerically located thresholds against the closed form
n_minor <= lambda^2 N^2 (docs/theory.md section 10), optimiser end points against the convex
program, and the ``ufm minority-collapse`` command."""

import math

import pytest

import ufm
from ufm.cli.main import main
from ufm.systems.ufm import MINORITY_PRESETS, MinorityConfig, minority_collapse, minority_threshold

TINY = MINORITY_PRESETS["tiny"]


def test_mse_thresholds_bracket_the_closed_form():
    res = minority_collapse(TINY.replace(loss="mse", bias="none", check_seeds=0))
    (th,) = res.thresholds
    R = minority_threshold(20, 2, 2, 2e-2, 2e-2)
    assert th["vanish_closed_form"] == th["merge_closed_form"] == R
    for name in ("merge", "vanish"):
        lo, hi = th[name]
        assert lo < R <= hi and hi / lo < 1.1, (name, lo, hi)
    assert th["max_gap"] < 1e-12
    # below the threshold the minority means are orthogonal (90 degrees), beyond it zero
    below = res.rows["ratio"] < R
    assert all(abs(a - 90) < 1e-6 for a in res.rows["angle_deg"][below])
    assert all(x <= 1e-6 for x in res.rows["norm_ratio"][~below])


def test_ce_minority_means_merge_at_the_closed_form_and_optimiser_agrees():
    """CE, no bias: the minority means merge (and stay non-zero) where n_minor <= lambda^2 N^2;
    the UFM optimiser's end points at R = 10 are certified by the program and share its
    geometry."""
    res = minority_collapse(TINY.replace(loss="ce", bias="none", check_seeds=2))
    (th,) = res.thresholds
    lo, hi = th["merge"]
    assert lo < th["merge_closed_form"] <= hi
    assert th["vanish"] is None and math.isnan(th["vanish_closed_form"])
    assert th["max_gap"] < 1e-7
    (c,) = res.checks
    assert c["sizes"] == (20, 20, 2, 2) and c["max_f_minus_lower"] < 1e-7
    assert c["norm_ratio"] == pytest.approx(c["convex_norm_ratio"], rel=1e-6)
    assert c["angle_deg"] == pytest.approx(c["convex_angle_deg"], abs=1e-4)


def test_config_errors_name_the_field():
    for bad, field in [
        (dict(ratios=(0.5, 2.0)), "ratios"),
        (dict(lambdas=(-1.0,)), "lambdas"),
        (dict(loss="hinge"), "loss"),
        (dict(bias="regularized"), "bias"),
        (dict(K_minor=0), "K_minor"),
    ]:
        with pytest.raises(ufm.SpecError, match=field):
            MinorityConfig(**bad)


def test_cli_writes_the_folder(tmp_path, capsys):
    out = tmp_path / "mc"
    rc = main(["minority-collapse", "--loss", "mse", "--check-seeds", "0", "--out", str(out)])
    assert rc == 0
    assert (out / "rows.csv").exists() and (out / "minority_collapse.png").exists()
    text = (out / "thresholds.txt").read_text()
    assert "29.22" in text and text in capsys.readouterr().out
    assert main(["minority-collapse", "--ratios", "0.5,2"]) == 2  # one-line error, exit code 2
    err = capsys.readouterr().err
    assert "ratios must be numbers >= 1" in err and len(err.strip().splitlines()) == 1


def test_cli_no_figures_spellings():
    from ufm.cli.main import build_parser

    parser = build_parser()
    for flag in ("--no-figures", "--no-figure"):  # the other commands' spelling, and the old one
        assert parser.parse_args(["minority-collapse", flag]).no_figure is True
    assert parser.parse_args(["minority-collapse"]).no_figure is False
