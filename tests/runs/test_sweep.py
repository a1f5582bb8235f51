"""Sweeps: spec validation, run/resume, kill-and-resume, two processes == one, failures, CLI.

The in-process runs use the 8 fake CPU devices of conftest.py; the subprocess runs use 1 or 2
devices per process, so the comparisons also check device- and process-count independence.
"""

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import time

import numpy as np
import pytest
from helpers import ROOT, cli_cmd, cli_env

import ufm
from ufm.cli import main as _cli
from ufm.runs import sweep as _sweep
from ufm.runs.sweep_spec import _toml

SPEC = """
name = "t"
analyses = ["closed_form"]

[grid]
K = 3
n = 2
d = 3
loss = ["ce", "mse"]

[seeds]
count = 24
base = 5

[optimizer]
name = "gd"
learning_rate = 1.0
max_steps = 300
tol = 1e-6
chunk = 100

[chunking]
seeds_per_chunk = 2
"""
TOTAL = 2 * 24
VALUE_COLUMNS = (
    "config_hash",
    "seed",
    "model",
    "K",
    "n",
    "d",
    "loss",
    "bias",
    "lambda_W",
    "lambda_H",
    "lambda_b",
    "dtype",
    "status",
    "f",
    "grad_norm",
    "steps",
    "f_star",
    "f_gap",
    "error",
)


def _spec(text=SPEC, **changes):
    """The test spec with top-level tables updated, e.g. seeds={"count": 30}."""
    raw = _toml.loads(text)
    for k, v in changes.items():
        raw[k] = {**raw[k], **v} if isinstance(v, dict) else v
    return ufm.runs.SweepSpec.from_dict(raw, name="t", text=text)


def _assert_same_rows(a, b):
    assert a.num_rows == b.num_rows
    for c in VALUE_COLUMNS:
        x, y = a.column(c).to_pylist(), b.column(c).to_pylist()
        if c in ("f", "grad_norm", "f_star", "f_gap", "lambda_W", "lambda_H", "lambda_b"):
            np.testing.assert_allclose(x, y, rtol=1e-14, atol=1e-15, err_msg=c)
        else:
            assert x == y, c


def _cli_cmd(*args):
    return cli_cmd("sweep", *args), cli_env()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted single-process run on 8 devices."""
    out = tmp_path_factory.mktemp("reference")
    summary = ufm.run_sweep(_spec(), out, progress=False)
    assert summary.seeds_run == TOTAL and summary.seeds_skipped == 0
    return out


@pytest.fixture
def spec_file(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text(SPEC)
    return path


# -- the spec ----------------------------------------------------------------------------------


def test_example_specs_load():
    tiny = ufm.load_sweep_spec(ROOT / "experiments/sweeps/tiny.toml")
    configs, invalid = tiny.expand()
    assert len(configs) == 4 and not invalid
    assert {(c.spec.loss, c.spec.bias) for c in configs} == {
        (lo, b) for lo in ("ce", "mse") for b in ("none", "free")
    }
    assert configs[0].label == "loss=ce bias=none"
    big = ufm.load_sweep_spec(ROOT / "experiments/sweeps/d_equals_k.toml")
    configs, invalid = big.expand()
    assert not invalid and big.num_seeds == 10_000
    assert all(c.spec.d == c.spec.K for c in configs)
    assert {(c.spec.loss, c.spec.bias) for c in configs} == {
        (lo, b) for lo in ("ce", "mse") for b in ("none", "free", "regularized")
    }


def test_config_hash_is_canonical_json_sha256():
    spec = _spec()
    c = spec.expand()[0][0]
    doc = {
        "model": "ufm",
        "spec": c.spec.as_dict(),
        "optimizer": spec.optimizer.as_dict(),
        "analyses": {"closed_form": {}},
        "seeds": {"base": 5, "init_scale": None},
    }
    blob = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    assert c.hash == hashlib.sha256(blob.encode()).hexdigest()[:16]
    # not hashed: seed count, chunking; hashed: tolerance, seed base; aliases normalised
    same = _spec(seeds={"count": 99}, chunking={"seeds_per_chunk": 7}).expand()[0][0]
    assert same.hash == c.hash
    assert _spec(optimizer={"tol": 1e-7}).expand()[0][0].hash != c.hash
    assert _spec(seeds={"base": 6}).expand()[0][0].hash != c.hash
    alias = _spec(grid={"bias": "regularised", "lambda_b": 0.1}).expand()[0][0]
    assert alias.hash == _spec(grid={"bias": "regularized", "lambda_b": 0.1}).expand()[0][0].hash


def test_union_grid_and_invalid_points_named():
    text = (
        SPEC.replace("[grid]", "[[grid]]")
        + """
[[grid]]
K = 3
n = 2
d = [1, 3]
bias = ["none", "regularized"]
lambda_b = [0.0, 0.01]
"""
    )
    configs, invalid = ufm.load_sweep_spec(text).expand()
    # table 1: ce, mse; table 2: (none, 0.0) and (regularized, 0.01) valid for d = 1 and 3, the
    # mismatched bias / lambda_b pairs invalid. d = 1 < K - 1 has no closed form: a valid
    # (rank-constrained) problem whose rows get f* = nan, not an invalid point (issue 10, item 8)
    assert len(configs) == 5  # (ce, d=3, none, 0.0) of table 2 is table 1's ce point
    assert sorted(c.spec.d for c in configs) == [1, 1, 3, 3, 3]
    errors = [p.error for p in invalid]
    assert len(invalid) == 4
    assert sum("lambda_b" in e for e in errors) == 4  # mismatched bias / lambda_b, d=1 and d=3
    assert "grid point" in str(invalid[0]) and "lambda_b" in str(invalid[0]) + str(invalid[1])


BAD_SPECS = [
    ("unknown = 1\n" + SPEC, "unknown"),
    (SPEC.replace("K = 3", "Kay = 3"), "grid.Kay"),
    (SPEC.replace('loss = ["ce", "mse"]', "loss = []"), "grid.loss"),
    (SPEC.replace("count = 24", "count = -3"), "seeds.count"),
    (SPEC.replace("count = 24", "count = 2.5"), "seeds.count"),
    (SPEC.replace("count = 24", ""), "seeds.count"),
    (SPEC.replace("learning_rate = 1.0", 'learning_rate = "fast"'), "optimizer.learning_rate"),
    (SPEC.replace("max_steps = 300", "max_steps = 0"), "optimizer.max_steps"),
    (SPEC.replace('name = "gd"', 'name = "nosuchopt"'), "optimizer"),
    (SPEC.replace('["closed_form"]', '["closed_form", "nope"]'), "analyses"),
    (SPEC + "memory_budget = '1 GiB'\n", "chunking.memory_budget"),
    (SPEC.replace("seeds_per_chunk = 2", "memory_budget = 'lots'"), "chunking.memory_budget"),
    ('model = "mlp"\n' + SPEC, "model"),
    (SPEC.split("[grid]")[0] + "[seeds]\ncount = 2\n", "grid"),
    ("seeds = 3\n" + SPEC.replace("[seeds]\ncount = 24\nbase = 5", ""), "seeds"),
    (SPEC.replace("K = 3", "K = [3"), "TOML"),
]


@pytest.mark.parametrize("text,key", BAD_SPECS)
def test_malformed_spec_names_the_key(text, key):
    with pytest.raises(ufm.SpecError, match=re.escape(repr(key)) if key != "TOML" else "TOML"):
        ufm.load_sweep_spec(text)


def test_malformed_spec_says_expected_form():
    with pytest.raises(ufm.SpecError, match=r"'seeds.count': expected an integer >= 1, got -3"):
        ufm.load_sweep_spec(SPEC.replace("count = 24", "count = -3"))


def test_register_model_and_analysis(monkeypatch):
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Toy:
        width: int
        depth: int = 2

        def __post_init__(self):
            if self.width < 1:
                raise ufm.SpecError(f"width must be >= 1, got {self.width}")

    from ufm.core import registry

    system = ufm.core.System(
        name="toy",
        spec_type=Toy,
        loss=lambda s, p: 0.0,
        init=lambda s, k, scale=None: 0.0,
        examples=lambda: (Toy(1),),
    )
    monkeypatch.setitem(registry._BY_NAME, "toy", system)
    monkeypatch.setitem(registry._BY_TYPE, Toy, system)
    spec = ufm.load_sweep_spec('model = "toy"\n[grid]\nwidth = [0, 4, 8]\n[seeds]\ncount = 1\n')
    configs, invalid = spec.expand()
    assert [c.spec for c in configs] == [Toy(4), Toy(8)]
    assert len(invalid) == 1 and "width must be >= 1" in invalid[0].error
    with pytest.raises(ufm.SpecError, match="grid.K.*width, depth"):
        ufm.load_sweep_spec('model = "toy"\n[grid]\nK = 3\n[seeds]\ncount = 1\n')


# -- running -----------------------------------------------------------------------------------


def test_run_columns_and_resume(reference):
    t = ufm.runs.load_results_arrow(reference)
    assert t.num_rows == TOTAL
    assert len(set(zip(t["config_hash"].to_pylist(), t["seed"].to_pylist()))) == TOTAL
    assert set(t["status"].to_pylist()) <= {"converged", "max_steps"}
    f, f_star = t["f"].to_numpy(), t["f_star"].to_numpy()
    for loss in ("ce", "mse"):
        m = np.array(t["loss"].to_pylist()) == loss
        assert np.all(f_star[m] == ufm.optimal_value(ufm.UFMSpec(K=3, n=2, d=3, loss=loss)))
    np.testing.assert_array_equal(t["f_gap"].to_numpy(), f - f_star)
    assert np.all(t["f_gap"].to_numpy() > -1e-12)  # nothing below the global minimum
    for c in (
        "ufm_version",
        "jax_version",
        "device_kind",
        "matmul_precision",
        "timestamp",
        "process_index",
        "num_devices",
        "x64",
    ):
        assert c in t.column_names
    assert set(t["num_devices"].to_pylist()) == {8} and all(t["x64"].to_pylist())
    # same spec again: nothing to do
    again = ufm.run_sweep(_spec(), reference, progress=False)
    assert again.seeds_run == 0 and again.seeds_skipped == TOTAL
    assert ufm.runs.load_results_arrow(reference).equals(t)


def test_more_seeds_extends(tmp_path, reference):
    out = tmp_path / "more"
    ufm.run_sweep(_spec(seeds={"count": 20}), out, progress=False)
    s = ufm.run_sweep(_spec(), out, progress=False)
    assert (s.seeds_run, s.seeds_skipped) == (8, 40)
    _assert_same_rows(ufm.runs.load_results_arrow(out), ufm.runs.load_results_arrow(reference))


def test_killed_run_resumes_exactly(tmp_path, spec_file, reference):
    out = tmp_path / "killed"
    cmd, env = _cli_cmd("run", spec_file, "--out", out, "--devices", "1", "--quiet")
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    try:
        while not [p for p in out.glob("data/*.parquet") if not p.name.startswith(".")]:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no chunk file appeared"
            time.sleep(0.002)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    partial = ufm.runs.load_results_arrow(out)  # every file left behind is complete
    assert 0 < partial.num_rows < TOTAL
    resumed = ufm.run_sweep(_spec(), out, progress=False)  # 8 devices here
    assert resumed.seeds_skipped == partial.num_rows
    assert resumed.seeds_run == TOTAL - partial.num_rows
    assert not [p for p in (out / "data").iterdir() if p.name.startswith(".")]
    _assert_same_rows(ufm.runs.load_results_arrow(out), ufm.runs.load_results_arrow(reference))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_equal_one(tmp_path, spec_file, reference):
    out = tmp_path / "mp"
    port = _free_port()
    procs = []
    for i in range(2):
        cmd, env = _cli_cmd(
            "run",
            spec_file,
            "--out",
            out,
            "--devices",
            "2",
            "--quiet",
            "--coordinator",
            f"127.0.0.1:{port}",
            "--num-processes",
            "2",
            "--process-id",
            i,
        )
        procs.append(
            subprocess.Popen(
                cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
        )
    try:
        logs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (_, err) in zip(procs, logs):
        assert p.returncode == 0, err.decode()[-3000:]
    t = ufm.runs.load_results_arrow(out)
    _assert_same_rows(t, ufm.runs.load_results_arrow(reference))
    owner = dict(zip(t["seed"].to_pylist(), t["process_index"].to_pylist()))
    assert all(owner[s] == s % 2 for s in owner)  # each process ran its own share
    assert set(t["process_count"].to_pylist()) == {2}
    assert {p.name.split("-")[1] for p in (out / "data").glob("*.parquet")} == {"p0", "p1"}
    assert "all processes: 48/48 seeds done" in logs[0][1].decode()
    assert "seeds" not in logs[1][1].decode()  # only process 0 reports


def test_invalid_points_and_divergent_seeds(tmp_path, monkeypatch, capsys):
    """lambda_b without a regularised bias is skipped and reported; lambda_W = 50 with lr 1
    diverges seed by seed: flagged per row, the sweep completes."""
    spec = _spec(
        grid={"loss": "mse", "lambda_W": [5e-3, 50.0], "lambda_b": [0.0, 0.01]}, seeds={"count": 6}
    )
    with pytest.raises(ufm.SpecError, match="lambda_b"):
        ufm.run_sweep(spec, tmp_path / "strict", strict=True, progress=False)
    assert not (tmp_path / "strict").exists()  # raised before touching the folder

    out = tmp_path / "nan"
    summary = ufm.run_sweep(spec, out, progress=False)
    assert len(summary.invalid) == 2 and "lambda_b" in capsys.readouterr().err
    t = ufm.runs.load_results_arrow(out)
    assert t.num_rows == 12
    lw, status = np.array(t["lambda_W"].to_pylist()), np.array(t["status"].to_pylist())
    assert set(status[lw == 50.0]) <= {"diverged", "nan"} and (lw == 50.0).sum() == 6
    assert set(status[lw == 5e-3]) <= {"converged", "max_steps"}
    assert summary.status_counts.get("diverged", 0) + summary.status_counts.get("nan", 0) == 6
    st = ufm.report.sweep_status(out)
    assert st.failed == 6 and st.done == st.total == 12
    assert "skipped invalid grid point" in st.text


def test_failing_analysis_is_recorded_not_raised(tmp_path, monkeypatch):
    from ufm.runs import analyses as _analyses

    def broken(spec, result):
        raise RuntimeError("boom")

    monkeypatch.setitem(_analyses._ANALYSES, "broken", broken)
    monkeypatch.setitem(
        _analyses._ANALYSES,
        "twice_f",
        lambda spec, result: {"twice_f": 2 * np.asarray(result.loss)},
    )
    spec = _spec(analyses=["broken", "twice_f"], seeds={"count": 3}, grid={"loss": "mse"})
    with pytest.warns(RuntimeWarning, match="'broken' failed"):
        ufm.run_sweep(spec, tmp_path, progress=False)
    t = ufm.runs.load_results_arrow(tmp_path)
    assert t.num_rows == 3
    assert all("analysis 'broken' failed: RuntimeError: boom" == e for e in t["error"].to_pylist())
    np.testing.assert_array_equal(t["twice_f"].to_numpy(), 2 * t["f"].to_numpy())


def test_unwritable_folder_fails_before_compute(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")

    def no_compute(*a, **k):
        raise AssertionError("computed before checking the folder")

    monkeypatch.setattr(_sweep, "run_chunk", no_compute)
    with pytest.raises(ufm.runs.StoreError, match="not writable"):
        ufm.run_sweep(_spec(), blocker / "out", progress=False)
    code = _cli.main(
        [
            "sweep",
            "run",
            str(ROOT / "experiments/sweeps/tiny.toml"),
            "--out",
            str(blocker / "out"),
            "--quiet",
        ]
    )
    assert code == 2


def test_cli_status_and_report(reference, capsys):
    assert _cli.main(["sweep", "status", str(reference)]) == 0
    out = capsys.readouterr().out
    assert f"{TOTAL}/{TOTAL} starts done" in out and "24/24" in out and "ETA 00:00" in out
    assert _cli.main(["sweep", "report", str(reference)]) == 0
    out = capsys.readouterr().out
    assert "loss=ce" in out and "loss=mse" in out and "median" in out
    assert (reference / "figures" / "f_gap_ecdf.png").stat().st_size > 1000
    assert (reference / "figures" / "status_counts.png").exists()
    assert (reference / "report.md").read_text().strip() == out.strip()
    assert _cli.main(["sweep", "status", str(reference / "nowhere")]) == 2


def test_status_eta_from_recorded_rates(tmp_path):
    out = tmp_path / "half"
    ufm.run_sweep(_spec(seeds={"count": 8}), out, progress=False)
    store = ufm.runs.store.ResultStore(out)
    manifest = store.read_manifest()
    # pretend the latest run wanted 24 seeds of both configurations
    manifest["runs"][-1]["configs"] = list(manifest["configs"])
    for c in manifest["configs"].values():
        c["num_seeds"] = 24
    store.write_manifest(manifest)
    st = ufm.report.sweep_status(out)
    t = ufm.runs.load_results_arrow(out)
    # the rate leaves compilation out: (chunk_seconds - compile_seconds) per start
    run_s = t["chunk_seconds"].to_numpy() - t["compile_seconds"].to_numpy()
    sps = run_s / t["chunk_size"].to_numpy()
    expect = sum(
        16 * np.median(sps[np.array(t["config_hash"].to_pylist()) == r["hash"]]) for r in st.rows
    )
    assert (st.done, st.total) == (16, 48)
    assert st.eta_seconds == pytest.approx(expect)


def test_large_configurations_run_at_the_default_optimisation_level(tmp_path, monkeypatch):
    """A configuration with >= LARGE_CONFIGURATION starts runs its chunks under
    full_optimisation (XLA's default level instead of the quick one): same rows to rounding."""
    from ufm.core import jitting

    seen = []
    real = _sweep.run_chunk

    def spy(*args, **kwargs):
        seen.append(jitting._FULL.get())
        return real(*args, **kwargs)

    monkeypatch.setattr(_sweep, "run_chunk", spy)
    spec = _spec(seeds={"count": 8}, analyses=["closed_form", "hessian"])
    ufm.run_sweep(spec, tmp_path / "quick", progress=False)
    assert seen and not any(seen)
    seen.clear()
    monkeypatch.setattr(_sweep, "LARGE_CONFIGURATION", 8)
    ufm.run_sweep(spec, tmp_path / "full", progress=False)
    assert seen and all(seen)
    a = ufm.runs.load_results_arrow(tmp_path / "quick")
    b = ufm.runs.load_results_arrow(tmp_path / "full")
    _assert_same_rows(a, b)
    assert a.column("class").to_pylist() == b.column("class").to_pylist()
    assert not jitting._FULL.get()  # reset after the run
