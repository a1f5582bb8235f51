"""``ufm spectral`` end to end on the ``tiny`` preset (in process), resume, refusal, bad input.

The run trains plain alignment, whitening and INTL (2 seeds, 30 epochs) on latent-factor data of
rank 4 and checks the qualitative result of the experiment: plain cosine alignment collapses the
embedding (effective rank of ``Z`` near 1) while whitening and INTL keep at least the data's
rank; rows are readable with ``ufm.load_results``, with documented columns; figures are PNGs.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_one_line_error, assert_pngs, help_and_listing, main_in_process

import ufm
from ufm.systems import spectral as sp

METHODS = ["--methods", "alignment,whiten,intl"]


def _run(args, capsys):
    return main_in_process(capsys, "spectral", "--quiet", *args)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tmp_path_factory.mktemp("spectral") / "tiny"


def test_tiny_collapse_of_alignment_only_then_resume(tiny, capsys):
    code, out, err = _run(["--preset", "tiny", *METHODS, "--out", str(tiny)], capsys)
    assert code == 0, err
    rows = ufm.load_results(tiny)
    assert len(rows) == 3 * 2 * 4  # methods x seeds x checkpoints (epochs 0, 10, 20, 30)
    assert set(rows["model"]) == {"spectral"} and set(rows["epoch"]) == {0, 10, 20, 30}
    assert (rows["status"] == "max_steps").all() and (rows["fail_epoch"] == -1).all()
    last = rows[rows["epoch"] == 30].set_index(["label", "seed"])
    rank = sp.spec_data(sp.PRESETS["tiny"].specs()[0]).rank
    assert rank == 4
    align = last.loc["alignment", "erank_z"]
    assert (align < 1.3).all(), align  # collapsed to about one direction
    for label in ("whiten (feature)", "intl T=4 (feature)"):
        assert (last.loc[label, "erank_z"] > 0.75 * rank).all(), last.loc[label, "erank_z"]
    # whitening of a batch of 32 embeddings of dimension 16: a flat spectrum of Z_hat
    np.testing.assert_allclose(last.loc["whiten (feature)", "erank_zhat"], 16.0, rtol=1e-3)
    # at initialisation every method starts from the same network (same seed, same Z)
    first = rows[rows["epoch"] == 0].set_index(["label", "seed"])["erank_z"]
    np.testing.assert_allclose(first.loc["alignment"], first.loc["intl T=4 (feature)"])
    # spectra are list columns: trace-normalised, descending
    spec = np.asarray(last.loc[("alignment", 0), "spectrum_z"])
    assert spec.shape == (16,) and abs(spec.sum() - 1) < 1e-5 and np.all(np.diff(spec) <= 1e-7)
    assert "erank Z" in out and "Power family" in out
    docs = ufm.runs.store.column_docs(tiny)
    assert "effective rank" in docs["erank_z"] and "list" in docs["spectrum_z"]
    assert_pngs(tiny / "figures", ("spectra", "erank_over_training", "accuracy_vs_p"))
    report = (tiny / "summary.txt").read_text().strip()
    assert report in out
    files = sorted((tiny / "data").glob("*.parquet"))
    # rerun: every seed is stored, nothing is trained again, the same tables come out
    code, out2, err = _run(["--preset", "tiny", *METHODS, "--out", str(tiny)], capsys)
    assert code == 0, err
    assert "0 (method, seed) run(s) trained, 6 already stored" in out2
    assert sorted((tiny / "data").glob("*.parquet")) == files and report in out2


def test_other_settings_into_the_folder_are_refused(tiny, capsys):
    if not (tiny / "manifest.json").exists():
        pytest.skip("needs the end-to-end run")
    args = ["--preset", "tiny", "--methods", "alignment", "--epochs", "5", "--out", str(tiny)]
    code, _, err = _run(args, capsys)
    assert_one_line_error(code, err, "--extend")


@pytest.mark.parametrize(
    "args, pattern",
    [
        (["--preset", "nope"], r"preset must be one of tiny, digits, synthetic, paper"),
        (["--preset", "paper"], r"needs data_dir"),
        (["--seeds", "0"], r"seeds"),
        (["--epochs", "-1"], r"epochs"),
        (["--methods", "alignment,nope"], r"methods must be among"),
        (["--dtype", "float16"], r"dtype"),
        (["--knn-k", "0"], r"knn_k"),
        (["--ridge", "2"], r"ridge must lie in"),
        (["--collapse-frac", "-1"], r"--collapse-frac"),
        (["--data-dir", "/no/such/folder"], r"data_dir"),
    ],
)
def test_bad_options_are_one_line_errors(args, pattern, tmp_path, capsys):
    code, out, err = _run([*args, "--out", str(tmp_path / "x")], capsys)
    assert_one_line_error(code, err, pattern)
    assert not (tmp_path / "x").exists()  # nothing was written


def test_help_shows_defaults_and_list(capsys):
    text, listing = help_and_listing(capsys, "spectral")
    assert "(default: tiny)" in text and "(default: 20)" in text
    for name in ("tiny:", "digits:", "synthetic:", "paper:", "power p=0.4 (feature)", "wmse"):
        assert name in listing
