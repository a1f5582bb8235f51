"""The ``lambda_pos_min`` figure (issue 16 item 4: the curvature after the zero modes "in
classification records and figures"): the plotted points are exactly the recorded values of the
global minima, the closed-form reference tick sits at ``lambda_pos_star``, and the results folder
writes the figure only when there is something to plot. Synthetic rows only (no compilation)."""

import numpy as np
import pytest

import ufm
from ufm.report.figures import plot_lambda_pos_min
from ufm.report.folder import write_report


def _rows(with_ref: bool = True) -> dict:
    lab = np.array(["a"] * 4 + ["b"] * 4, dtype=object)
    cls = np.array(["global_min", "global_min", "strict_saddle", "global_min"] * 2, dtype=object)
    pos = np.array([5e-3, 5.2e-3, 1e-2, np.nan, 2e-3, 2.1e-3, 3e-3, 1.9e-3])
    status = np.array(["converged"] * 7 + ["diverged"], dtype=object)
    rows = dict(label=lab, status=status, f=np.ones(8), grad_norm=np.zeros(8))
    rows.update({"class": cls, "lambda_pos_min": pos})
    if with_ref:  # "a" has a closed form, "b" (class sizes, say) has none
        rows["lambda_pos_star"] = np.array([5e-3] * 4 + [np.nan] * 4)
    return rows


def _strips(fig):
    (ax,) = fig.axes
    pts = [np.asarray(c.get_offsets()) for c in ax.collections]
    ticks = [ln for ln in ax.lines]
    return ax, pts, ticks


def test_plotted_points_and_reference_equal_the_rows():
    plt = ufm.report.figures.plt_module()
    fig = plot_lambda_pos_min(_rows())
    ax, pts, ticks = _strips(fig)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]
    # strip a: the two finite global minima (the saddle and the nan are left out)
    np.testing.assert_array_equal(np.sort(pts[0][:, 0]), [5e-3, 5.2e-3])
    assert np.all(np.abs(pts[0][:, 1] - 0) <= 0.25)
    # strip b: the diverged row and the saddle are left out
    np.testing.assert_array_equal(np.sort(pts[1][:, 0]), [2e-3, 2.1e-3])
    assert np.all(np.abs(pts[1][:, 1] - 1) <= 0.25)
    # one reference tick, on strip a, at the closed-form value; none on strip b (nan)
    assert len(ticks) == 1
    np.testing.assert_array_equal(ticks[0].get_xdata(), [5e-3, 5e-3])
    assert abs(np.mean(ticks[0].get_ydata()) - 0) < 1e-12
    assert ax.get_legend() is not None and ax.get_xscale() == "log"
    plt.close(fig)
    # without the reference column: the same points, no tick, no legend
    fig = plot_lambda_pos_min(_rows(with_ref=False))
    ax, pts2, ticks = _strips(fig)
    assert not ticks and ax.get_legend() is None
    for a, b in zip(pts, pts2):
        np.testing.assert_array_equal(a[:, 0], b[:, 0])
    plt.close(fig)


def test_nothing_to_plot_gives_no_figure(tmp_path):
    rows = _rows()
    assert plot_lambda_pos_min({k: v for k, v in rows.items() if k != "lambda_pos_min"}) is None
    nan = dict(rows, lambda_pos_min=np.full(8, np.nan))
    assert plot_lambda_pos_min(nan) is None
    assert plot_lambda_pos_min(dict(rows, lambda_pos_min=np.full(8, None, dtype=object))) is None
    # the results folder: the figure only when something can be plotted, no crash otherwise
    (tmp_path / "with").mkdir()
    (tmp_path / "nan").mkdir()
    made = write_report(tmp_path / "with", rows)
    assert tmp_path / "with" / "figures" / "lambda_pos_min.png" in made
    made = write_report(tmp_path / "nan", nan)
    assert not (tmp_path / "nan" / "figures" / "lambda_pos_min.png").exists()
    assert all(p.exists() for p in made)


@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_reference_column_is_the_closed_form(loss):
    spec = ufm.UFMSpec(K=3, n=2, d=3, loss=loss, lambda_W=5e-3, lambda_H=5e-3)
    from ufm.systems.ufm.spectra import collapse_spectrum_columns

    class Points:
        loss = np.zeros(3)

    col = collapse_spectrum_columns(spec, Points())["lambda_pos_star"]
    assert col.shape == (3,)
    assert np.all(col == ufm.systems.ufm.collapse_spectrum(spec).smallest_nonzero)
    sized = spec.replace(n=(2, 2, 1))
    assert np.isnan(collapse_spectrum_columns(sized, Points())["lambda_pos_star"]).all()
