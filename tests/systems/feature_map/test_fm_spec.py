"""FeatureMapSpec validation (one-line errors naming the field), data-dependent checks, presets,
and the objective hook against an independent numpy forward pass."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ufm
from ufm.core import SpecError
from ufm.systems import feature_map as fm

BASE = fm.FeatureMapSpec(widths=(8,), n_train=40, batch_size=20, epochs=2, dtype="float64")


def _bad_values(value):
    if isinstance(value, bool):
        return ["yes"]
    if isinstance(value, int):
        return [-(10**9)]
    if isinstance(value, float):
        return [-1.0, float("nan"), math.inf]
    if isinstance(value, str):
        return ["no-such-option"]
    if isinstance(value, tuple):
        return [(0,), ("a",), "12"]
    return []


def test_every_field_rejects_bad_values_in_one_line_naming_it():
    """What the conformance test checks for sweepable systems, for every field (the system is
    not sweepable, so the conformance test skips it)."""
    checked = 0
    for field in dataclasses.fields(BASE):
        value = getattr(BASE, field.name)
        bads = _bad_values(value)
        if field.name == "checkpoints":
            bads = [(-1,), (3,), ("a",)]  # 3 > epochs
        for bad in bads:
            with pytest.raises(SpecError) as err:
                dataclasses.replace(BASE, **{field.name: bad})
            msg = str(err.value)
            assert field.name in msg and len(msg.splitlines()) == 1, (field.name, bad, msg)
            checked += 1
    assert checked >= 38  # 24 fields


@pytest.mark.parametrize(
    "changes, field",
    [
        (dict(head="etf"), "head"),  # widths[-1] = 8 != 10 classes of digits
        (dict(head="etf", widths=(6, 10), training="last_layer"), "last_layer"),
        (dict(net="cnn", widths=(8, 8)), "widths"),
        (dict(data="folder"), "data_path"),
        (dict(data_path="/tmp/x"), "data_path"),
        (dict(batch_size=50), "batch_size"),  # > n_train = 40
    ],
)
def test_inconsistent_fields_are_refused(changes, field):
    with pytest.raises(SpecError, match=field):
        dataclasses.replace(BASE, **changes)


def test_data_dependent_checks_name_the_field(tmp_path):
    with pytest.raises(SpecError, match="n_train"):
        fm.dataset(BASE.replace(n_train=5000, batch_size=20))
    with pytest.raises(SpecError, match="net='cnn' needs image data"):
        fm.dataset(BASE.replace(net="cnn", data="mixture"))
    x = np.ones((12, 5), np.float32)
    y = np.arange(12) % 3
    for name, a in (("x_train", x), ("y_train", y), ("x_test", x[:4]), ("y_test", y[:4])):
        np.save(tmp_path / f"{name}.npy", a)
    spec = BASE.replace(data="folder", data_path=str(tmp_path), n_train=0, batch_size=4)
    with pytest.raises(SpecError, match=r"widths\[-1\] = number of classes = 3"):
        fm.dataset(spec.replace(head="etf", widths=(6, 10), feature_activation="identity"))
    assert fm.data_info(spec)[:3] == (5, None, 3)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        fm.dataset(spec.replace(data_path=str(tmp_path / "nowhere")))


def test_defaults_checkpoints_and_presets():
    spec = fm.FeatureMapSpec()
    assert (spec.net, spec.widths, spec.loss, spec.optimizer, spec.lr) == (
        "mlp",
        (128, 128),
        "mse",
        "adam",
        1e-3,
    )
    assert spec.checkpoint_epochs == (0, 1, 2, 5, 10, 20, 50, 100, 200, 300)
    assert fm.FeatureMapSpec(epochs=7, checkpoints=[3, 3, 1]).checkpoint_epochs == (0, 1, 3, 7)
    assert fm.FeatureMapSpec(widths=[64]).widths == (64,)  # lists from TOML/JSON
    for name, preset in fm.PRESETS.items():
        if preset.needs_data:
            with pytest.raises(SpecError, match="--data"):
                preset.specs()
            specs = preset.specs(data_path="/some/folder")
            assert all(s.data == "folder" for _, _, s in specs)
        else:
            specs = preset.specs()
        assert {role for _, role, _ in specs} <= {"spectra", "etf"} and specs
        etf = [s for _, role, s in specs if role == "etf" and s.head == "etf"]
        assert all(s.width == 10 for s in etf), name
    tiny = fm.PRESETS["tiny"]
    assert [n for n, _, _ in tiny.specs("spectra")] == ["mlp-mse", "mlp-mse-last-layer"]
    assert all(s.epochs == 3 for _, _, s in tiny.specs(epochs=3))
    with pytest.raises(SpecError, match="unknown configuration"):
        tiny.specs(only=["nope"])
    with pytest.raises(SpecError, match="mode"):
        tiny.specs("both")


def _numpy_forward(params, spec, x):
    """Independent forward pass of an MLP with a linear head (equinox Linear: y = W x + b)."""
    body = params.body.layers
    h = x
    for layer in body:
        h = h @ np.asarray(layer.weight).T + np.asarray(layer.bias)
        h = np.maximum(h, 0.0)
    head = params.head.linear
    return h @ np.asarray(head.weight).T + np.asarray(head.bias)


@pytest.mark.parametrize("loss", ["mse", "ce"])
def test_objective_matches_numpy_and_counts(loss):
    spec = BASE.replace(widths=(8, 7), loss=loss, weight_decay=0.01)
    p = ufm.init_params(spec, jax.random.key(3))
    ds = fm.dataset(spec)
    out = _numpy_forward(p, spec, np.asarray(ds.x_train, np.float64))
    Y = np.eye(10)[ds.y_train]
    if loss == "mse":
        data = 0.5 * np.mean(np.sum((out - Y) ** 2, axis=1))
    else:
        m = out.max(axis=1, keepdims=True)
        lse = m[:, 0] + np.log(np.exp(out - m).sum(axis=1))
        data = np.mean(lse - np.sum(Y * out, axis=1))
    sq = sum(float(np.sum(np.asarray(x) ** 2)) for x in jax.tree_util.tree_leaves(p))
    np.testing.assert_allclose(float(ufm.loss(spec, p)), data + 0.005 * sq, rtol=1e-12)
    trainable, total = fm.param_counts(spec)
    assert trainable == total == 64 * 8 + 8 + 8 * 7 + 7 + 7 * 10 + 10
    last = fm.param_counts(spec.replace(training="last_layer"))
    assert last == (7 * 10 + 10, total)
    lazy = fm.param_counts(spec.replace(training="lazy"))
    assert lazy == (total, 2 * total)  # the frozen copy f_0 counts in total only


def test_lazy_objective_is_zero_at_init_scaled_and_trainer_loss_agrees():
    """f_alpha = alpha (f - f_0) vanishes at initialisation; the objective is L/alpha^2; the
    trainer's minibatch loss on the whole set has the same value, and its gradient is the
    objective's on trainable arrays and exactly zero on the frozen copy f_0."""
    spec = BASE.replace(training="lazy", alpha=10.0)
    p = ufm.init_params(spec, jax.random.key(0))
    ds = fm.dataset(spec)
    np.testing.assert_allclose(float(ufm.loss(spec, p)), 0.5 / 100.0, rtol=1e-12)
    moved = jax.tree_util.tree_map(
        lambda a, b: a + 0.01 * b, p, jax.tree_util.tree_map(jnp.ones_like, p)
    )
    loss_fn = fm.make_loss_fn(spec)
    batch = (jnp.asarray(ds.x_train), jnp.asarray(ds.y_train))
    np.testing.assert_allclose(
        float(loss_fn(moved, batch, None)), float(ufm.loss(spec, moved)), rtol=1e-12
    )
    g_train = jax.grad(loss_fn)(moved, batch, None)
    g_obj = jax.grad(ufm.objective(spec))(moved)
    mask = jax.tree_util.tree_leaves(fm.model.mask_of(spec))
    assert not all(mask) and any(mask)
    for a, b, m in zip(jax.tree_util.tree_leaves(g_train), jax.tree_util.tree_leaves(g_obj), mask):
        if m:
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-14)
        else:
            assert not np.any(np.asarray(a)) and np.any(np.asarray(b))
