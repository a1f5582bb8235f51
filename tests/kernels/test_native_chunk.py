"""The native chunk kernel of ufm.optimize (ufm.kernels.native.ufm_chunk) against the XLA paths:
same statuses and step counts, parameters and traces to rounding, for every loss, bias variant and
update rule, with padded column blocks, failed seeds, seeds that stop at different steps, float32,
several devices, and the cases where it must not run."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ufm
from ufm.kernels import native
from ufm.kernels.native import build

pytestmark = pytest.mark.skipif(
    not native.available(), reason=f"native kernels unavailable: {native.unavailable_reason()}"
)

KW = dict(max_steps=230, tol=1e-4, chunk=60, record_every=20, divergence_threshold=1e6)


def _problem(num, loss, bias, n=4, K=3, d=3, dtype="float64", scale=0.5):
    lb = 2e-2 if bias == "regularized" else 0.0
    spec = ufm.UFMSpec(
        K=K,
        n=n,
        d=d,
        loss=loss,
        bias=bias,
        lambda_W=5e-2,
        lambda_H=5e-2,
        lambda_b=lb,
        dtype=dtype,
    )
    p0 = ufm.init_batch(spec, jax.random.key(3), num, scale=scale)
    # seed 0 diverges (starts past divergence_threshold), seed 1 starts at NaN
    p0 = p0._replace(W=p0.W.at[0].multiply(1e4), H=p0.H.at[0].multiply(1e4).at[1, 0, 0].set(np.nan))
    return spec, p0


def _same(a, b, rtol, atol):
    assert a.status.tolist() == b.status.tolist()
    assert a.steps.tolist() == b.steps.tolist()
    for x, y in zip(jax.tree_util.tree_leaves(a.params), jax.tree_util.tree_leaves(b.params)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)
    np.testing.assert_array_equal(a.trace_steps, b.trace_steps)
    for key in ("loss", "grad_norm"):
        np.testing.assert_allclose(a.trace[key], b.trace[key], rtol=rtol, atol=atol)


@pytest.mark.parametrize("loss", ["ce", "mse"])
@pytest.mark.parametrize("bias", ["none", "free", "regularized"])
@pytest.mark.parametrize("rule", ["gd", "momentum"])
def test_native_equals_xla_and_plain_paths(loss, bias, rule):
    # N = 12 (one padded block) and N = 33 (full blocks and a padded one): the masked columns
    for n in (4, 11):
        spec, p0 = _problem(24, loss, bias, n=n)
        opt = ufm.gd(1.0) if rule == "gd" else ufm.momentum(0.3, 0.8)
        fast = ufm.optimize(spec, p0, optimizer=opt, kernel="native", devices=None, **KW)
        for other in ("xla", "plain"):
            ref = ufm.optimize(spec, p0, optimizer=opt, kernel=other, devices=None, **KW)
            _same(fast, ref, rtol=1e-10, atol=1e-12)
        st = fast.status.tolist()
        assert st[0] == ufm.Status.DIVERGED and st[1] == ufm.Status.NAN
        assert ufm.Status.CONVERGED in st  # seeds stop at various steps and then stay put
        assert len(set(fast.steps.tolist())) > 3
        assert np.isfinite(np.asarray(fast.loss)[2:]).all()  # the other seeds stay finite


def test_native_float32_and_larger_sizes():
    # K = d = 10 (a compiled-in size; n = 40: blocks of 16 columns inside one class and across
    # two) and K = 5, d = 20 (the generic loop, every block across classes); float32 to rounding
    for K, d, n in ((10, 10, 40), (5, 20, 7)):
        spec = ufm.UFMSpec(K=K, n=n, d=d, loss="ce", bias="free", dtype="float32")
        p0 = ufm.init_batch(spec, jax.random.key(1), 12)
        kw = dict(optimizer=ufm.momentum(0.5, 0.9), max_steps=150, tol=0.0, chunk=50, devices=None)
        a = ufm.optimize(spec, p0, kernel="native", **kw)
        b = ufm.optimize(spec, p0, kernel="xla", **kw)
        assert a.params.H.dtype == jnp.float32
        assert a.steps.tolist() == b.steps.tolist() == [150] * 12
        np.testing.assert_allclose(a.trace["loss"], b.trace["loss"], rtol=2e-5)
        np.testing.assert_allclose(np.asarray(a.params.W), np.asarray(b.params.W), atol=2e-5)


def test_native_on_several_devices_equals_one_device():
    spec, p0 = _problem(70, "ce", "none")
    one = ufm.optimize(spec, p0, optimizer=ufm.gd(1.0), kernel="native", devices=None, **KW)
    if len(jax.devices()) < 4:
        pytest.skip("needs fake CPU devices (tests/conftest.py)")
    four = ufm.optimize(spec, p0, optimizer=ufm.gd(1.0), kernel="native", devices=4, **KW)
    _same(four, one, rtol=0, atol=0)  # each seed runs alone: bit for bit, padding dropped
    assert four.params.W.shape == p0.W.shape


def test_auto_takes_native_only_where_it_applies():
    spec, p0 = _problem(6, "ce", "none")
    kw = dict(max_steps=40, tol=0.0, chunk=20, devices=None)
    auto = ufm.optimize(spec, p0, optimizer=ufm.gd(1.0), kernel="auto", **kw)
    nat = ufm.optimize(spec, p0, optimizer=ufm.gd(1.0), kernel="native", **kw)
    _same(auto, nat, rtol=0, atol=0)
    with pytest.raises(ValueError, match="record function"):
        ufm.optimize(spec, p0, optimizer=ufm.gd(1.0), kernel="native", record=_record, **kw)
    with pytest.raises(ValueError, match="not ufm.gd or ufm.momentum"):
        ufm.optimize(spec, p0, optimizer=ufm.make_optimizer("adam", 1e-2), kernel="native", **kw)
    with pytest.raises(ValueError, match="not ufm.gd or ufm.momentum"):
        ufm.optimize(
            spec, p0, optimizer=ufm.momentum(0.5, 0.9, nesterov=True), kernel="native", **kw
        )
    # with a record function "auto" takes the XLA path and records the extra keys
    rec = ufm.optimize(spec, p0, optimizer=ufm.gd(1.0), record=_record, **kw)
    assert set(rec.trace) == {"loss", "grad_norm", "w_norm"}
    np.testing.assert_allclose(rec.trace["loss"], auto.trace["loss"], rtol=1e-12)
    big = ufm.UFMSpec(K=65, n=1, d=2, loss="mse")
    with pytest.raises(ValueError, match="no native chunk kernel applies"):
        ufm.optimize(
            big,
            ufm.init_batch(big, jax.random.key(0), 2),
            optimizer=ufm.gd(1.0),
            kernel="native",
            **kw,
        )


def _record(spec, params):
    return {"w_norm": jnp.sqrt(jnp.sum(params.W**2))}


def test_update_rule_is_only_read_from_ufm_optimisers():
    assert ufm.optim.transforms.update_rule(ufm.gd(0.25)) == ("gd", 0.25)
    assert ufm.optim.transforms.update_rule(ufm.momentum(0.5, 0.7)) == ("momentum", 0.5, 0.7)
    import optax

    assert ufm.optim.transforms.update_rule(optax.sgd(0.25)) is None  # not made by ufm
    assert ufm.optim.transforms.update_rule(ufm.momentum(0.5, 0.7, nesterov=True)) is None


def test_switched_off_or_no_compiler_falls_back_with_a_reason(tmp_path):
    code = (
        "import jax, ufm; from ufm.kernels import native;"
        "print(native.available(), native.unavailable_reason());"
        "spec = ufm.UFMSpec(K=3, n=2, d=3, loss='mse', dtype='float32');"
        "p0 = ufm.init_batch(spec, jax.random.key(0), 3);"
        "r = ufm.optimize(spec, p0, optimizer=ufm.gd(1.0), max_steps=50);"
        "print(r.status_counts()['converged'] + r.status_counts()['max_steps'])\n"
        "try:\n    ufm.optimize(spec, p0, optimizer=ufm.gd(1.0), kernel='native')\n"
        "except ValueError as e:\n    print(e)"
    )
    for env, want in (
        ({"UFM_NATIVE_KERNELS": "off"}, "switched off by UFM_NATIVE_KERNELS"),
        ({"CXX": "false", "PATH": "/nonexistent"}, "compiling the native kernels failed"),
    ):
        full = {**os.environ, "UFM_NATIVE_CACHE": str(tmp_path / "native"), **env}
        if "PATH" in env:  # only `false` as a compiler: found by its full path
            full["CXX"] = "/bin/false"
        out = subprocess.run(
            [sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=300
        )
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert lines[0].startswith("False") and want in lines[0]
        assert lines[1] == "3"  # the XLA path ran the job
        assert "kernel='native' is not available" in lines[2] and want in lines[2]


def test_library_name_changes_with_the_flags_and_the_folder_moves(tmp_path, monkeypatch):
    cxx = build._compiler()
    key = build._key(cxx)
    monkeypatch.setattr(build, "FLAGS", build.FLAGS + ("-DUFM_TEST_FLAG",))
    assert build._key(cxx) != key  # other flags: another library
    monkeypatch.setenv("UFM_NATIVE_CACHE", str(tmp_path))
    assert build.native_cache_dir() == tmp_path
