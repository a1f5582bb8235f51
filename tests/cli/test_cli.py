"""`ufm landscape` end to end on a tiny grid, and one-line errors for bad options."""

import json

import numpy as np
import pytest

from ufm.cli.main import main


def test_landscape_small_run(tmp_path, capsys):
    out = tmp_path / "res"
    rc = main(
        [
            "landscape",
            "--K",
            "3",
            "--seeds",
            "4",
            "--loss",
            "mse",
            "--bias",
            "none,free",
            "--lambda-W",
            "0.005",
            "--steps",
            "3000",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "mse-none" in text and "mse-free" in text
    import ufm

    rows = ufm.load_results(out)  # the landscape folder is an ordinary results folder
    random = rows[rows.source == "random"]
    assert len(random) == 8 and random.at_optimum.all() and random.f_gap.abs().max() < 1e-8
    assert (random["class"] == "global_min").all()
    # planted saddles: d' in {1, 2} (MSE no bias, K = 3) and {1} (free bias), 2 starts each, +
    # origin
    planted = rows[rows.source != "random"]
    assert len(planted) == (2 * 2 + 1) + (1 * 2 + 1)
    assert (planted["class"] == "strict_saddle").all()
    assert (planted.lambda_min <= planted.curvature_bound + 1e-12).all()
    assert "strict saddles" in text and "0 spurious or degenerate" in text
    meta = json.loads((out / "manifest.json").read_text())
    assert all(c["num_seeds"] == 4 for c in meta["configs"].values())
    assert meta["runs"][-1]["job"] == "landscape" and meta["runs"][-1]["jax_version"]
    assert (rows.opt_learning_rate == 1.0).all() and (rows.opt_max_steps == 3000).all()
    for name in (
        "f_gap_ecdf",
        "nc_vs_iteration",
        "lambda_min_vs_gap",
        "negative_counts",
        "saddle_bound",
        "status_counts",
        "lambda_pos_min",
    ):
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000
    _check_figure_content(out)
    from ufm.runs import load_traces

    tr = load_traces(out)
    # every start's trace: 4 random + (2 x 2 planted + origin) for mse-none, + (2 + 1) for mse-free
    assert sorted(np.asarray(t["loss"]).shape[1] for t in tr.values()) == [7, 9]
    assert all((t["source"] == "random").sum() == 4 for t in tr.values())


def _check_figure_content(out):
    """What the figures of the small run plot, from their artists: one ECDF curve of 4 points
    per configuration, one scatter point per classified point in its configuration's panel, a
    Morse-index histogram of every point by source, one point per planted saddle against the
    bound, status bars that add up to the starts, one median line and band per configuration
    along the iterations. No hidden or extra series."""
    import matplotlib.pyplot as plt

    import ufm

    rows, traces = ufm.systems.ufm.load_landscape(out)
    lab, src = rows["label"].astype(str), rows["source"].astype(str)
    labels = sorted(set(lab))
    per_config = {c: int((lab == c).sum()) for c in labels}
    assert sorted(per_config.values()) == [7, 9]
    fig = ufm.report.plot_gap_ecdf(rows)
    lines = fig.axes[0].get_lines()
    assert sorted(ln.get_label() for ln in lines) == labels
    assert all(len(ln.get_xdata()) == 4 and ln.get_ydata()[-1] == 1.0 for ln in lines)
    fig = ufm.report.plot_lambda_min_vs_gap(rows)
    panels = {ax.get_title(): ax for ax in fig.axes if ax.get_visible() and ax.get_title()}
    assert sorted(panels) == labels
    for name, ax in panels.items():
        pts = np.concatenate([c.get_offsets() for c in ax.collections])
        assert len(pts) == per_config[name]
        np.testing.assert_allclose(
            np.sort(pts[:, 1]), np.sort(rows["lambda_min"][lab == name]), rtol=1e-12
        )
    fig = ufm.report.plot_negative_counts(rows)
    # a stacked hist labels the first patch of each data set (its container stays unlabelled)
    heights = {
        c.patches[0].get_label(): sum(p.get_height() for p in c.patches)
        for c in fig.axes[0].containers
    }
    assert heights == {s: float((src == s).sum()) for s in ("random", "planted", "origin")}
    fig = ufm.report.plot_saddle_bound(rows)
    pts = np.concatenate([c.get_offsets() for c in fig.axes[0].collections])
    assert len(pts) == int((src != "random").sum()) == 8
    np.testing.assert_allclose(
        np.sort(pts[:, 1]), np.sort(-rows["lambda_min"][src != "random"]), rtol=1e-12
    )
    fig = ufm.report.plot_status_counts(rows)
    widths = {}
    for c in fig.axes[0].containers:
        for i, p in enumerate(c.patches):
            widths[i] = widths.get(i, 0) + p.get_width()
    assert sorted(widths.values()) == [7.0, 9.0]
    fig = ufm.report.plot_nc_traces(traces)
    # each configuration's trace has its own length (a batch stops once every seed converged)
    steps = {label: len(tr["step"]) for label, tr in traces.items()}
    drawn = [ax for ax in fig.axes if ax.get_lines()]
    assert len(drawn) >= 3  # nc1_pinv, nc2_etf_W, nc3_zhu (+ grad_norm when traced)
    for ax in drawn:  # a median line and a quantile band per configuration
        assert len(ax.get_lines()) == len(ax.collections) == 2
        assert sorted(ln.get_label() for ln in ax.get_lines()) == sorted(steps)
        assert all(len(ln.get_xdata()) == steps[ln.get_label()] for ln in ax.get_lines())
    plt.close("all")


@pytest.mark.parametrize(
    "argv,field",
    [
        (["--K", "1"], "K"),
        (["--loss", "hinge"], "loss"),
        (["--bias", "sometimes"], "bias"),
        (["--lambda-W", "-1"], "lambda_W"),
        (["--lambda-H", "nan"], "lambda_H"),
        (["--seeds", "0"], "seeds"),
        (["--optimizer", "nonsense"], "optimizer"),
        (["--lr", "-0.1"], "learning_rate"),
        (["--lr", "abc"], "--lr"),
        (["--dtype", "int8"], "dtype"),
        (["--d-offset", "-9"], "d"),
        # NaN starts became "degenerate" points (issue 10, item 3): refused up front
        (["--init-scale", "nan"], "init_scale"),
        (["--init-scale", "inf"], "init_scale"),
    ],
)
def test_bad_options_give_one_line_errors(argv, field, capsys, tmp_path):
    try:
        rc = main(["landscape", *argv, "--out", str(tmp_path / "x")])
    except SystemExit as e:  # argparse type errors
        rc = e.code
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ufm: error:") and len(err.splitlines()) == 1 and field in err


def test_unwritable_output_folder(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["landscape", "--out", str(blocker / "sub")]) == 2
    assert "not writable" in capsys.readouterr().err


def test_diverging_runs_are_flagged_and_explained(tmp_path, capsys):
    """GD with lr 1 diverges on MSE with a large regularised bias: every seed gets the per-seed
    status 'diverged' (no crash, no NaN in the stored table's status), and the verdict says so."""
    out = tmp_path / "div"
    rc = main(
        [
            "landscape",
            "--K",
            "3",
            "--seeds",
            "3",
            "--loss",
            "mse",
            "--bias",
            "regularized",
            "--lambda-b",
            "1.5",
            "--lambda-W",
            "0.005",
            "--steps",
            "500",
            "--saddle-seeds",
            "0",
            "--no-origin",
            "--no-figures",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "3 diverged" in text and "smaller --lr" in text and "left out" in text
    import ufm

    rows = ufm.load_results(out)
    assert (rows.status == "diverged").all() and not rows.at_optimum.any()
    # failed rows hold no values that look valid, and no figure plots them
    assert rows.f_gap.isna().all() and rows.nc1_pinv.isna().all() and rows.nc3_zhu.isna().all()
    assert not rows.counterexample.any()
    fig = ufm.report.plot_gap_ecdf(rows)
    assert not fig.axes[0].get_lines()
    fig = ufm.report.plot_status_counts(rows)
    diverged = [c for c in fig.axes[0].containers if c.get_label() == "diverged"]
    assert [p.get_width() for p in diverged[0].patches] == [3.0]


def _subcommands():
    import argparse

    from ufm.cli.main import build_parser

    out = []

    def walk(parser, prefix):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    out.append((*prefix, name))
                    walk(sub, (*prefix, name))

    walk(build_parser(), ())
    return out


def test_every_subcommand_help_shows_its_defaults(capsys):
    """``--help`` of every (nested) subcommand renders, and every option with a default other than
    None says its default."""
    import argparse

    from ufm.cli.main import build_parser

    commands = _subcommands()
    assert {("landscape",), ("sweep", "submit"), ("spectral",)} <= set(commands)
    for cmd in commands:
        with pytest.raises(SystemExit) as e:
            main([*cmd, "--help"])
        assert e.value.code == 0, cmd
        text = " ".join(capsys.readouterr().out.split())
        parser = build_parser()
        for name in cmd:
            sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
            parser = sub.choices[name]
        for action in parser._actions:
            if action.default in (None, argparse.SUPPRESS) or not action.option_strings:
                continue
            if isinstance(action, argparse._SubParsersAction) or action.dest == "help":
                continue
            assert "default" in (action.help or "") or f"(default: {action.default}" in text, (
                cmd,
                action.dest,
            )
