"""Runs that keep their word: settings kept with every row, folders that refuse to mix runs, one
writer at a time, bad input as one-line errors, interrupts and kills that lose nothing, Slurm
arrays (submitit's local executor) and static shares that fill one store equal to a single run,
multi-process runs that fail fast."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from helpers import cli_cmd, cli_env, interruptible_cli_cmd, run_cli, run_script

import ufm
from ufm.cli.main import main

SPEC = """
name = "g"
analyses = ["closed_form"]

[grid]
K = 2
n = 2
d = 2
loss = ["ce", "mse"]

[seeds]
count = 8

[optimizer]
name = "gd"
learning_rate = 1.0
max_steps = 200
tol = 1e-6
chunk = 100

[chunking]
seeds_per_chunk = 2
"""
TOTAL = 16
KEY = ("config_hash", "source", "seed")


def _spec():
    return ufm.load_sweep_spec(SPEC)


def _rows(folder):
    t = ufm.runs.load_results_arrow(folder, duplicates="keep")
    return {k: np.array(t[k].to_pylist(), dtype=object) for k in t.column_names}


def _keys(folder):
    r = _rows(folder)
    return sorted(zip(*(r[k].tolist() for k in KEY))) if "source" in r else []


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    ufm.run_sweep(_spec(), out, devices=1, progress=False)
    return out


def _same_as(single, other):
    a, b = _rows(single), _rows(other)
    ka, kb = sorted(zip(*(a[k] for k in KEY))), sorted(zip(*(b[k] for k in KEY)))
    assert ka == kb and len(kb) == len(set(kb)) == TOTAL  # nothing lost, nothing twice
    ia = np.lexsort([a[k].astype(str) for k in reversed(KEY)])
    ib = np.lexsort([b[k].astype(str) for k in reversed(KEY)])
    np.testing.assert_allclose(a["f"][ia].astype(float), b["f"][ib].astype(float), rtol=1e-12)


# -- settings in every row; folders do not mix runs -----------------------------------------------


def test_rows_carry_every_setting_and_other_settings_are_refused(tmp_path, single):
    rows = _rows(single)
    for col in (
        "opt_name",
        "opt_learning_rate",
        "opt_max_steps",
        "opt_tol",
        "opt_chunk",
        "opt_divergence_threshold",
        "opt_options",
        "opt_polish",
        "base_seed",
        "analyses",
        "git_commit",
        "python_version",
        "numpy_version",
        "jaxlib_version",
        "host",
        "writer",
        "compile_seconds",
    ):
        assert col in rows, col
    assert set(rows["opt_learning_rate"]) == {1.0} and set(rows["opt_max_steps"]) == {200}
    out = tmp_path / "mixed"
    ufm.run_sweep(_spec(), out, devices=1, progress=False)
    other = ufm.load_sweep_spec(SPEC.replace("learning_rate = 1.0", "learning_rate = 0.5"))
    with pytest.raises(ufm.runs.StoreError, match="differing in opt_learning_rate.*--extend"):
        ufm.run_sweep(other, out, devices=1, progress=False)
    assert len(_keys(out)) == TOTAL  # the refused run wrote nothing
    ufm.run_sweep(other, out, devices=1, progress=False, extend=True)
    rows = _rows(out)
    assert len(rows["seed"]) == 2 * TOTAL and set(rows["opt_learning_rate"]) == {0.5, 1.0}
    assert len(set(rows["config_hash"])) == 4  # keyed by the full settings
    labels = set(ufm.report.load_rows(out)["label"])
    assert len(labels) == 4 and all("opt_learning_rate=" in lab for lab in labels)


# -- one writer at a time -------------------------------------------------------------------------


def test_second_sweep_process_is_refused_and_nothing_is_duplicated(tmp_path):
    spec_file = tmp_path / "g.toml"
    spec_file.write_text(
        SPEC.replace("max_steps = 200", "max_steps = 20000").replace("tol = 1e-6", "tol = 0.0")
    )
    out = tmp_path / "locked"
    first = subprocess.Popen(
        interruptible_cli_cmd("sweep", "run", spec_file, "--out", out, "--quiet"),
        env=cli_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (out / "manifest.json").exists():  # the first writer holds the lock now
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        second = run_cli("sweep", "run", spec_file, "--out", out, "--quiet", timeout=120)
        assert second.returncode == 2
        err = second.stderr.strip().splitlines()
        assert len(err) == 1 and "in use by another writer (pid" in err[0]
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=120)
    keys = _keys(out)
    assert len(keys) == len(set(keys))


# -- bad input: one line naming the field ---------------------------------------------------------

BAD_CLI = [
    (["landscape", "--lambda-H", "-1e-3"], "lambda_H"),
    (["landscape", "--lambda-b", "0.1", "--bias", "none"], "--lambda-b"),
    (["landscape", "--init-scale", "0"], "init_scale"),
    (["landscape", "--init-scale", "-1"], "init_scale"),
    (["landscape", "--init-scale", "nan"], "init_scale"),
    (["landscape", "--base-seed", "-1"], "base_seed"),
    (["landscape", "--base-seed", str(2**70)], "base_seed"),
    (["landscape", "--steps", "3000000000"], "max_steps"),
    (["landscape", "--seeds", str(10**12)], "seeds"),
    (["landscape", "--optimizer", "l2_loss"], "optimizer"),
    (["landscape", "--hessian-method", "magic"], "hessian_method"),
    (["sweep", "run", "SPEC", "--coordinator", "not-an-address"], "--coordinator"),
    (["sweep", "run", "SPEC", "--num-processes", "2", "--process-id", "5"], "--process-id"),
]


@pytest.mark.parametrize("argv,field", BAD_CLI, ids=[" ".join(a) for a, _ in BAD_CLI])
def test_bad_command_lines_give_one_line_errors(argv, field, tmp_path, capsys):
    spec_file = tmp_path / "g.toml"
    spec_file.write_text(SPEC)
    argv = [str(spec_file) if a == "SPEC" else a for a in argv] + ["--out", str(tmp_path / "o")]
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "error:" in err and field in err, err
    assert not (tmp_path / "o" / "data").exists() or not any((tmp_path / "o" / "data").iterdir())


BAD_TOML = [
    ('[optimizer]\nname = "momentum"\nbetta = 0.9\n', "optimizer.betta"),
    ('[optimizer]\nname = "gd"\nbeta = 0.9\n', "optimizer.beta"),
    ('[optimizer]\nname = "momentum"\nbeta = "x"\n', "optimizer.beta"),
    ('[optimizer]\nname = "l2_loss"\n', "optimizer"),
    ("[optimizer]\nlearning_rate = -1.0\n", "optimizer.learning_rate"),
    ('[analyses.hessian]\nmethod = "magic"\n', "analyses.hessian"),
    ("[analyses.metrics]\ntau = -1.0\n", "analyses.metrics"),
]


@pytest.mark.parametrize("extra,key", BAD_TOML, ids=[k for _, k in BAD_TOML])
def test_bad_sweep_specs_name_the_key(extra, key):
    base = SPEC.split("[optimizer]")[0].replace('analyses = ["closed_form"]\n', "")
    with pytest.raises(ufm.SpecError, match=key.replace(".", r"\.")):
        ufm.load_sweep_spec(base + extra)


def test_wrong_type_grid_value_and_huge_counts_raise():
    with pytest.raises(ufm.SpecError, match="'grid.K': expected an integer, got 'three'"):
        ufm.load_sweep_spec(SPEC.replace("K = 2", 'K = ["three", 4]'))
    with pytest.raises(ufm.SpecError, match="seeds.count = 2147483648 would need"):
        ufm.load_sweep_spec(SPEC.replace("count = 8", "count = 2147483648"))


def test_non_utf8_spec_file_is_named(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(SPEC.replace('"g"', '"g\xe9"').encode("latin-1"))
    with pytest.raises(ufm.SpecError, match="latin1.toml.*not UTF-8"):
        ufm.load_sweep_spec(path)


def test_python_api_checks_its_inputs():
    import jax
    import jax.numpy as jnp

    spec = ufm.UFMSpec(K=3, n=2, d=3)
    cases = [
        (lambda: ufm.UFMSpec(K=3, n=2, d=3, lambda_W=[0.1, -5.0]), "lambda_W"),
        (lambda: ufm.UFMSpec(K=3, n=2, d=3, lambda_W=np.array([-1.0])), "lambda_W"),
        (lambda: ufm.UFMSpec(K=3, n=2, d=3, lambda_W=jnp.array(-1.0)), "lambda_W"),
        (lambda: ufm.UFMSpec(K=3, n=2, d=3, lambda_W={}), "lambda_W"),
        (lambda: ufm.UFMSpec(K=3, n=2, d=3, dtype=None), "dtype"),
        (lambda: ufm.init_batch(spec, jax.random.key(0), num_seeds=0), "num_seeds"),
        (lambda: ufm.init_batch(spec, jax.random.key(0), num_seeds=-2), "num_seeds"),
        (lambda: ufm.init_batch(spec, jax.random.key(0), 2, scale=0.0), "scale"),
        (lambda: ufm.optimize(spec, ufm.init_params(spec, jax.random.key(0))), "seed axis"),
        (lambda: ufm.loss(spec, ufm.init_batch(spec, jax.random.key(0), 2)), "leading seed"),
        (lambda: ufm.optimal_value(ufm.DeepUFMSpec(K=3, n=2, L=2, widths=4)), "dnc_loss"),
        (lambda: ufm.make_optimizer("momentum", 0.5, betta=0.9), "betta"),
        (lambda: ufm.gd(-1.0), "learning_rate"),
        (lambda: ufm.OptimizerSettings(max_steps=2**40), "max_steps"),
    ]
    for fn, word in cases:
        with pytest.raises((ValueError, TypeError)) as err:
            fn()
        msg = str(err.value)
        assert word in msg and len(msg.splitlines()) == 1, msg


# -- interrupts and kills of ufm landscape --------------------------------------------------------

# Six configurations of one shape (only lambda_W differs, which the compiled programs take as
# data): one compilation, and five configurations still to run when the first one is on disk.
LANDSCAPE = [
    "landscape",
    "--K",
    "3",
    "--n",
    "2",
    "--seeds",
    "3",
    "--loss",
    "ce",
    "--bias",
    "free",
    "--lambda-W",
    "0.001,0.002,0.003,0.004,0.005,0.006",
    "--steps",
    "300",
    "--saddle-seeds",
    "1",
    "--no-figures",
    "--quiet",
]


def test_landscape_killed_and_interrupted_resume_to_the_same_rows(tmp_path):
    ref = tmp_path / "ref"
    assert run_cli(*LANDSCAPE, "--out", ref).returncode == 0
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        interruptible_cli_cmd(*LANDSCAPE, "--out", out),
        env=cli_env(),
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 240
    while not list(out.glob("data/*.parquet")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()[-2000:]
        time.sleep(0.01)
    # Freeze it at once (the run must not finish before the Ctrl-C lands), then Ctrl-C: a clean
    # exit, no traceback, no SIGSEGV.
    proc.send_signal(signal.SIGSTOP)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGCONT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted; the results folder is consistent" in err and "Traceback" not in err
    done = len(_keys(out))
    assert 0 < done < len(_keys(ref))
    resumed = run_cli(*LANDSCAPE, "--out", out)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert sorted(_keys(out)) == sorted(_keys(ref))
    a, b = _rows(ref), _rows(out)
    ia = np.lexsort([a[k].astype(str) for k in reversed(KEY)])
    ib = np.lexsort([b[k].astype(str) for k in reversed(KEY)])
    assert a["class"][ia].tolist() == b["class"][ib].tolist()
    np.testing.assert_allclose(a["f"][ia].astype(float), b["f"][ib].astype(float), rtol=1e-12)
    assert not [p for p in (out / "data").iterdir() if p.name.startswith(".tmp")]


def test_a_swallowed_ctrl_c_still_stops_the_job_at_the_next_chunk():
    # CI saw a Ctrl-C land in JAX's garbage-collector callback: Python printed "Exception
    # ignored" and the run went on to the end with status 0. Here the SIGINT lands in a
    # finaliser (swallowed the same way); the next Progress.update must raise.
    script = """
import gc, os, signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)
from ufm.core.interrupts import install_stop_handlers, stop_requested
from ufm.core.progress import Progress
install_stop_handlers()

class Finaliser:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)  # the handler runs here, inside __del__: its exception is ignored

bar = Progress(3, "job", quiet=True)
bar.update(1)
Finaliser()
gc.collect()
print("carried on", stop_requested(), flush=True)
try:
    bar.update(1)
except KeyboardInterrupt:
    print("stopped at the chunk boundary", flush=True)
    sys.exit(0)
sys.exit(3)
"""
    proc = run_script(script, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    assert "Exception ignored" in proc.stderr
    assert "carried on True" in proc.stdout and "stopped at the chunk boundary" in proc.stdout


def test_the_cli_leaves_an_ignored_sigint_ignored():
    script = """
import signal
signal.signal(signal.SIGINT, signal.SIG_IGN)
from ufm.core.interrupts import install_stop_handlers, request_stop
install_stop_handlers()
assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
assert signal.getsignal(signal.SIGTERM) is request_stop
signal.signal(signal.SIGINT, signal.default_int_handler)
install_stop_handlers()
assert signal.getsignal(signal.SIGINT) is request_stop
print("ok")
"""
    proc = run_script(script, timeout=120)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-2000:]


# -- many processes, many machines ----------------------------------------------------------------


def test_static_shares_fill_one_store_equal_to_one_process(tmp_path, single):
    spec_file = tmp_path / "g.toml"
    spec_file.write_text(SPEC)
    out = tmp_path / "shares"
    procs = [
        subprocess.Popen(
            cli_cmd(
                "sweep",
                "run",
                spec_file,
                "--out",
                out,
                "--quiet",
                "--num-processes",
                "2",
                "--process-id",
                str(i),
            ),
            env=cli_env(),
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    _same_as(single, out)
    rows = _rows(out)
    assert all(int(s) % 2 == int(w[1:]) for s, w in zip(rows["seed"], rows["writer"]))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_partner_that_never_starts_fails_fast_with_one_line(tmp_path):
    spec_file = tmp_path / "g.toml"
    spec_file.write_text(SPEC)
    t0 = time.monotonic()
    r = run_cli(
        "sweep",
        "run",
        spec_file,
        "--out",
        tmp_path / "o",
        "--quiet",
        "--coordinator",
        f"127.0.0.1:{_free_port()}",
        "--num-processes",
        "2",
        "--process-id",
        "0",
        "--connect-timeout",
        "3",
        timeout=120,
    )
    assert r.returncode == 2 and time.monotonic() - t0 < 60
    lines = [x for x in r.stderr.splitlines() if "error" in x]
    assert len(lines) == 1 and "process(es) 1 of 2 did not start within 3 s" in lines[0]
    assert "Check failure stack trace" not in r.stderr


def test_dead_worker_is_reported_in_one_line_and_the_rest_is_kept(tmp_path):
    """jax.distributed over 2 processes; process 1 is killed: process 0 finishes its share and
    reports the missing partner at the final barrier (one line, exit 3, no C++ abort)."""
    spec_file = tmp_path / "g.toml"
    spec_file.write_text(SPEC)
    out = tmp_path / "mp"
    port = _free_port()
    env = cli_env(UFM_BARRIER_TIMEOUT="10")
    procs = [
        subprocess.Popen(
            cli_cmd(
                "sweep",
                "run",
                spec_file,
                "--out",
                out,
                "--quiet",
                "--coordinator",
                f"127.0.0.1:{port}",
                "--num-processes",
                "2",
                "--process-id",
                str(i),
            ),
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    deadline = time.monotonic() + 240
    while not list(out.glob("data/*-p1-*.parquet")) and not list(out.glob("data/*-p0-*")):
        assert time.monotonic() < deadline and procs[0].poll() is None
        time.sleep(0.05)
    procs[1].kill()
    _, err = procs[0].communicate(timeout=300)
    procs[1].communicate()
    assert procs[0].returncode == 3, err[-3000:]
    lines = [x for x in err.splitlines() if "error" in x]
    assert len(lines) == 1 and "not every other process reached the end" in lines[0]
    assert "Check failure stack trace" not in err
    rows = _rows(out)
    assert set(int(s) % 2 for s, w in zip(rows["seed"], rows["writer"]) if w == "p0") == {0}
    assert sum(1 for w in rows["writer"] if w == "p0") == TOTAL // 2  # its whole share


def test_slurm_array_local_executor_with_a_failing_task(tmp_path, single):
    """4 array tasks through submitit's LocalExecutor; task 1 fails on its first attempt after
    writing part of its share, is resubmitted and resumes: the store equals a single run."""
    pytest.importorskip("submitit")
    import sys

    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the task runs in a subprocess
    out = tmp_path / "array"
    summary = ufm.runs.submit_sweep(
        ufm.load_sweep_spec(SPEC),
        out,
        tasks=4,
        executor="local",
        retries=1,
        poll=0.5,
        task_fn=_flaky_task,
        log=open(os.devnull, "w"),
    )
    logs = "\n".join(f.read_text()[-1500:] for f in (out / "submitit").glob("*_log.err"))
    assert summary.failed == [], logs
    assert summary.attempts == {0: 1, 1: 2, 2: 1, 3: 1}
    _same_as(single, out)
    rows = _rows(out)
    assert set(rows["writer"]) == {"t0", "t1", "t2", "t3"}
    assert all(int(s) % 4 == int(w[1:]) for s, w in zip(rows["seed"], rows["writer"]))


def _flaky_task(spec_text, out, task, num_tasks, x64=True):
    from ufm.runs.submit import run_task

    flag = Path(out).parent / "failed-once"
    if task == 1 and not flag.exists():
        import jax

        jax.config.update("jax_enable_x64", True)
        spec = ufm.load_sweep_spec(spec_text.replace("count = 8", "count = 4"))
        ufm.run_sweep(spec, out, share=(task, num_tasks), writer=f"t{task}", progress=False)
        flag.write_text("1")
        raise RuntimeError("node lost")  # part of the share is written, the rest is not
    return run_task(spec_text, out, task, num_tasks, x64)


# -- progress -------------------------------------------------------------------------------------


def test_progress_names_configuration_and_phases_in_log_lines(tmp_path):
    import io

    buf = io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ufm.run_sweep(_spec(), tmp_path / "p", devices=1, progress=True, log=buf)
    text = buf.getvalue()
    assert "g loss=ce" in text and "100% 16/16" in text and "seeds/s" in text
    assert "[write]" in text or "[closed_form]" in text
    manifest = json.loads((tmp_path / "p" / "manifest.json").read_text())
    assert manifest["runs"][-1]["command"]
