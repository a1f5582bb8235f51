"""``ufm feature-map`` end to end on the ``tiny`` preset (in process: the compiled code is shared
with the other tests): rows readable by ``ufm.load_results`` (list columns included), tables with
verdicts, valid PNG figures, resume, folder refusal, one-line errors, user data in a folder."""

import numpy as np
import pytest
from helpers import assert_one_line_error, assert_pngs, help_and_listing, main_in_process

import ufm
from ufm.systems import feature_map as fm


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("fm") / "tiny"
    return out


def _run(args, capsys):
    return main_in_process(capsys, "feature-map", "--quiet", *args)


def test_tiny_end_to_end_then_resume(tiny, capsys):
    code, out, err = _run(["--preset", "tiny", "--out", str(tiny)], capsys)
    assert code == 0, err
    assert "mlp-mse " in out and "MF 2/2" in out and "EF 2/2" in out  # MF vs last layer EF
    assert "etf-10" in out and "learned-128" in out
    rows = ufm.load_results(tiny)
    cps = len(fm.PRESETS["tiny"].specs()[0][2].checkpoint_epochs)
    assert len(rows) == 2 * (2 * cps + 2 * 4)  # 2 seeds; spectra: 7 checkpoints, etf: 4
    assert set(rows["model"]) == {"feature_map"}
    assert set(rows["config"]) == {"mlp-mse", "mlp-mse-last-layer", "learned-128", "etf-10"}
    last = rows[rows["epoch"] == 40]
    verdicts = last.groupby("config")["verdict"].agg(lambda v: sorted(set(v)))
    assert verdicts["mlp-mse"] == ["MF"] and verdicts["mlp-mse-last-layer"] == ["EF"]
    assert isinstance(rows["rho"][0], np.ndarray) and rows["rho"][0].shape == (129,)
    assert np.all(np.diff(rows["pi_star"][0]) >= -1e-6) and rows["pi_star"][0][-1] <= 1 + 1e-6
    etf = rows[rows["role"] == "etf"]
    assert etf["step_bytes"].notna().all() and "rss_peak_bytes" not in rows  # tiny: no RSS
    assert (etf[etf["head"] == "etf"]["nc2_etf_weights"] < 1e-6).all()  # the ETF head is exact
    assert etf.groupby("config")["params_trainable"].first().to_dict() == {
        "learned-128": 26122,
        "etf-10": 9610,
    }
    docs = ufm.runs.store.column_docs(tiny)
    assert "D_LR" in docs["d_lr"] and "list" in docs["rho"]
    assert_pngs(tiny / "figures", ("spectra", "pi_curves", "d_lr", "etf_comparison", "etf_d_lr"))
    assert "MF / EF verdicts" in (tiny / "summary.txt").read_text()
    files = sorted((tiny / "data").glob("*.parquet"))
    report = (tiny / "summary.txt").read_text().strip()
    # rerun: every seed is stored, nothing is trained again, the same tables come out
    code, out2, err = _run(["--preset", "tiny", "--out", str(tiny), "--no-figures"], capsys)
    assert code == 0, err
    assert "0 seed runs trained, 8 seed runs already stored" in out2
    assert sorted((tiny / "data").glob("*.parquet")) == files
    assert report in out and report in out2


def test_other_settings_into_the_folder_are_refused(tiny, capsys):
    if not (tiny / "manifest.json").exists():
        pytest.skip("needs the end-to-end run")
    # a different configuration into the same folder is refused in one line (exit 2)
    code, _, err = _run(
        ["--preset", "tiny", "--out", str(tiny), "--configs", "mlp-mse", "--epochs", "5"], capsys
    )
    assert_one_line_error(code, err, "--extend")


@pytest.mark.parametrize(
    "args, pattern",
    [
        (["--preset", "nope"], r"--preset must be one of tiny, digits, etf, paper"),
        (["--mode", "both"], r"mode must be one of all, spectra, etf"),
        (["--configs", "mlp-xyz"], r"configs: unknown configuration"),
        (["--preset", "paper"], r"needs --data-dir FOLDER"),
        (["--seeds", "0"], r"seeds must be an integer >= 1"),
        (["--epochs", "-1"], r"epochs must be an integer >= 0"),
        (["--target-mass", "1.5"], r"target_mass must lie in"),
        (["--data-dir", "/no/such/folder"], r"not a folder"),
        (["--devices", "0"], r"--devices must be >= 1"),
    ],
)
def test_bad_options_are_one_line_errors(args, pattern, tmp_path, capsys):
    code, out, err = _run([*args, "--out", str(tmp_path / "x")], capsys)
    assert_one_line_error(code, err, pattern)
    assert not (tmp_path / "x").exists()  # nothing was written


def test_help_shows_defaults_and_list(capsys):
    text, listing = help_and_listing(capsys, "feature-map")
    assert "(default: tiny)" in text and "(default: 0.9)" in text and "--channels-last" in text
    for name in ("tiny", "digits", "etf", "paper", "mlp-mse-sgd-lazy", "etf-10-relu"):
        assert name in listing


def test_user_data_folder_paper_preset(tmp_path, capsys):
    """The paper preset's path on a user folder (digits saved as (n, 8, 8, 1) images)."""
    ds = ufm.data.load_digits()
    folder = tmp_path / "images"
    folder.mkdir()
    for name, a in (
        ("x_train", ds.x_train.reshape(-1, 8, 8, 1)),
        ("y_train", ds.y_train),
        ("x_test", ds.x_test.reshape(-1, 8, 8, 1)),
        ("y_test", ds.y_test),
    ):
        np.save(folder / f"{name}.npy", a)
    args = ["--preset", "paper", "--data-dir", folder, "--channels-last", "--configs", "mlp-mse"]
    args += ["--epochs", "2", "--seeds", "1", "--no-figures", "--out", str(tmp_path / "o")]
    code, out, err = _run(args, capsys)
    assert code == 0, err
    rows = ufm.load_results(tmp_path / "o")
    assert set(rows["data"]) == {"folder"} and set(rows["epoch"]) == {0, 1, 2}
    assert rows["test_acc"].iloc[-1] > 0.3  # 2 epochs of a 64-512-512-10 MLP on digits
    assert rows["rho"][0].shape == (513,)


def test_data_flag_is_a_hidden_deprecated_alias_of_data_dir(tmp_path, capsys):
    """``--data-dir`` is the flag (as in ``ufm spectral``); the old ``--data`` still works, hidden
    from ``--help``, with a warning: both reach the same folder check."""
    from ufm.cli.main import build_parser

    parser = build_parser()
    for flag in ("--data-dir", "--data"):
        assert parser.parse_args(["feature-map", flag, "F"]).data_dir == "F"
    assert parser.parse_args(["feature-map"]).data_dir is None
    capsys.readouterr()
    text, _ = help_and_listing(capsys, "feature-map")
    assert "--data-dir" in text and "--data " not in text and "--data," not in text
    out = ["--out", tmp_path / "x"]
    code, _, err = _run(["--data", "/no/such/folder", *out], capsys)
    warning, error = err.splitlines()
    assert warning == "ufm: warning: --data is deprecated; use --data-dir"
    assert_one_line_error(code, error + "\n", "not a folder")
    code, _, err2 = _run(["--data-dir", "/no/such/folder", *out], capsys)
    assert code == 2 and err2.strip() == error
