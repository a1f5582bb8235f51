"""The figure process of the command line (ufm.report.worker): same PNG bytes as rendering in
the command's own process, and no figure lost when the process fails."""

import numpy as np
import pytest

from ufm.report import worker as W
from ufm.report.folder import figure_jobs, render_figures


def _rows():
    rng = np.random.default_rng(0)
    n = 24
    lab = np.asarray(["ce-free K=3", "mse-free K=3"] * (n // 2), dtype=object)
    src = np.asarray((["random"] * 9 + ["planted", "origin", "random"]) * 2, dtype=object)
    saddle = src != "random"
    lam = np.where(saddle, -rng.uniform(1e-3, 1e-1, n), rng.uniform(-1e-12, 1e-12, n))
    return {
        "label": lab,
        "source": src,
        "status": np.asarray(["converged"] * n, dtype=object),
        "f": rng.uniform(0.1, 0.2, n),
        "f_gap": np.where(saddle, rng.uniform(1e-2, 1.0, n), rng.uniform(0, 1e-14, n)),
        "class": np.asarray(np.where(saddle, "strict_saddle", "global_min"), dtype=object),
        "lambda_min": lam,
        "n_neg": np.where(saddle, 2, 0),
        "curvature_bound": np.where(saddle, lam * 0.9, np.nan),
        "lambda_pos_min": rng.uniform(1e-3, 1e-2, n),
        "grad_norm": np.full(n, 1e-12),
    }


def _traces():
    steps = np.array([0, 10, 100])
    trace = {"step": steps, "nc1_pinv": np.ones((3, 4)), "grad_norm": np.ones((3, 4))}
    return {"ce-free K=3": trace}


CHEAP = ("plot_status_counts", "plot_saddle_bound", "plot_lambda_pos_min", "plot_negative_counts")


def _cheap(jobs):
    return [j for j in jobs if j[0] in CHEAP]


def test_the_figure_set_and_its_jobs(tmp_path):
    names = [p.name for _, _, p in figure_jobs(tmp_path, _rows(), _traces())]
    assert names == [
        "f_gap_ecdf.png",
        "status_counts.png",
        "nc_vs_iteration.png",
        "lambda_min_vs_gap.png",
        "negative_counts.png",
        "saddle_bound.png",
        "lambda_pos_min.png",
    ]
    assert figure_jobs(tmp_path, {}) == []


def test_worker_writes_the_same_png_bytes_as_the_command(tmp_path, monkeypatch):
    monkeypatch.setattr(W, "SETUP_COST", 0.0)  # cheap jobs only: share them out
    rows = _rows()
    here = render_figures(_cheap(figure_jobs(tmp_path / "here", rows)))
    worker = W.FigureWorker.start(force=True)
    assert worker is not None
    jobs = _cheap(figure_jobs(tmp_path / "there", rows))
    theirs = W.split_jobs(jobs)
    assert 0 < len(theirs) < len(jobs)  # both sides render
    there = render_figures(jobs, worker)
    assert worker._proc.returncode == 0  # the worker did its share
    assert [p.name for p in here] == [p.name for p in there] and len(here) == len(CHEAP)
    for a, b in zip(here, there):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_a_failed_worker_loses_no_figure(tmp_path):
    rows = _rows()
    worker = W.FigureWorker.start(force=True)
    worker._proc.kill()  # dies before the jobs arrive
    worker._proc.wait()
    made = render_figures(_cheap(figure_jobs(tmp_path, rows)), worker)
    assert {p.name for p in made} == {
        "status_counts.png",
        "negative_counts.png",
        "saddle_bound.png",
        "lambda_pos_min.png",
    }
    assert all(p.stat().st_size > 1000 for p in made)


def test_a_job_that_fails_in_the_worker_fails_in_the_command(tmp_path):
    """An error is not swallowed: the job is rendered again here and raises here."""
    rows = _rows()
    jobs = _cheap(figure_jobs(tmp_path, rows))
    bad = [("plot_saddle_bound", ({"label": rows["label"]},), tmp_path / "bad.png")]
    worker = W.FigureWorker.start(force=True)
    assert 0 in W.split_jobs(bad + jobs[:1])  # the bad job goes to the worker
    with pytest.raises(KeyError):
        render_figures(bad + jobs[:1], worker)
    assert not (tmp_path / "bad.png").exists()


def test_split_balances_the_measured_costs():
    names = ["plot_gap_ecdf", "plot_status_counts", "plot_nc_traces", "plot_lambda_min_vs_gap"]
    jobs = [(n, (), f"{n}.png") for n in names]
    theirs = W.split_jobs(jobs)
    cost = lambda idx: sum(W.COSTS.get(jobs[i][0], 1.0) for i in idx)  # noqa: E731
    mine = [i for i in range(len(jobs)) if i not in theirs]
    assert 2 in theirs and 3 in theirs  # the most expensive go to the warmed-up worker
    assert abs((cost(mine) + W.SETUP_COST) - cost(theirs)) <= max(W.COSTS.values())
    assert W.split_jobs(jobs[:1]) == [0]


@pytest.mark.parametrize(("value", "on"), [("0", False), ("off", False), ("1", True), ("", True)])
def test_off_switch(monkeypatch, value, on):
    monkeypatch.setenv("UFM_FIGURE_WORKER", value)
    monkeypatch.setattr(W.os, "cpu_count", lambda: 2)
    assert W.worker_enabled() is on
    if not on:
        assert W.FigureWorker.start() is None
    monkeypatch.setattr(W.os, "cpu_count", lambda: 1)  # one core: nothing to gain
    assert W.worker_enabled() is False
