"""Feature collapse: spec validation and the data model (shapes, token ids, law, seeds)."""

import dataclasses

import numpy as np
import pytest

from ufm.core import SpecError
from ufm.systems.feature_collapse import PRESETS, FeatureCollapseSpec, make_data, word_law

TINY = PRESETS["tiny"]


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"n_w": 100}, "n_w"),
        ({"n_c": 1, "n_w": 120}, "n_c"),
        ({"L": 0}, "L"),
        ({"K": 1}, "K"),
        ({"d": 0}, "d"),
        ({"nspl": 0}, "nspl"),
        ({"n_test": 0}, "n_test"),
        ({"law": "zipfian"}, "law"),
        ({"latents": "some"}, "latents"),
        ({"latents": "all"}, "K"),
        ({"layernorm": 1}, "layernorm"),
        ({"lr": 0.0}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"batch_size": 10_000}, "batch_size"),
        ({"weight_decay": -1e-3}, "weight_decay"),
        ({"weight_decay_w": -1.0}, "weight_decay_w"),
        ({"epochs": -1}, "epochs"),
        ({"init_scale_divisor": 0}, "init_scale_divisor"),
        ({"data_seed": -1}, "data_seed"),
        ({"dtype": "float16"}, "dtype"),
        ({"ln_eps": 0.0}, "ln_eps"),
        ({"K": 2.5}, "K"),
    ],
)
def test_invalid_values_name_the_field(changes, field):
    with pytest.raises(SpecError, match=rf"^{field}\b") as err:
        TINY.replace(**changes)
    assert len(str(err.value).splitlines()) == 1


def test_every_field_refuses_bad_values():
    """The conformance test's spec checks (skipped there: the system is not sweepable): every
    int field refuses -10**9, every float field -1.0 and nan, every str field an unknown
    option, with a one-line SpecError naming the field."""
    checked = 0
    for f in dataclasses.fields(TINY):
        value = getattr(TINY, f.name)
        if isinstance(value, bool):
            bad = [1, "yes"]
        elif isinstance(value, int):
            bad = [-(10**9), 2.5, "3"]
        elif isinstance(value, float):
            bad = [-1.0, float("nan"), float("inf"), "0.1"]
        elif isinstance(value, str):
            bad = ["no-such-option", 3]
        else:
            assert f.name == "weight_decay_w"
            bad = [-1.0, float("nan")]
        for b in bad:
            with pytest.raises(SpecError) as err:
                TINY.replace(**{f.name: b})
            assert str(err.value).startswith(f.name) and len(str(err.value).splitlines()) == 1
            checked += 1
    assert checked > 40
    assert TINY.replace(K=64.0).K == 64 and isinstance(TINY.replace(K=64.0).K, int)
    assert TINY.replace(law=" Zipf ").law == "zipf"


def test_derived_settings():
    assert TINY.s_c == 40 and TINY.n_train == 320 and TINY.steps_per_epoch == 10
    assert (TINY.wd_w, TINY.wd_u) == (1e-3, 1e-3)
    ln = TINY.replace(layernorm=True)
    assert (ln.wd_w, ln.wd_u, ln.collapse_type) == (0.0, 1e-3, 2)
    assert ln.replace(weight_decay_w=5e-4).wd_w == 5e-4
    assert TINY.collapse_type == 1 and TINY.replace(law="zipf").collapse_type == 3
    paper = PRESETS["paper"]
    assert (paper.n_c, paper.n_w, paper.L, paper.K, paper.d, paper.nspl) == (
        3,
        1200,
        15,
        1000,
        100,
        5,
    )
    assert (paper.lr, paper.batch_size, paper.weight_decay, paper.init_scale_divisor) == (
        0.1,
        100,
        1e-3,
        1000.0,
    )


def test_data_shapes_token_ids_labels():
    spec = TINY.replace(n_test=3)
    data = make_data(spec)
    K, L, s_c = spec.K, spec.L, spec.s_c
    assert data.Z.shape == (K, L) and data.Z.min() >= 0 and data.Z.max() < spec.n_c
    assert data.train_x.shape == (K * spec.nspl, L) and data.test_x.shape == (K * 3, L)
    np.testing.assert_array_equal(data.train_y, np.repeat(np.arange(K), spec.nspl))
    np.testing.assert_array_equal(data.test_y, np.repeat(np.arange(K), 3))
    for x, y in ((data.train_x, data.train_y), (data.test_x, data.test_y)):
        alpha, beta = x // s_c, x % s_c
        np.testing.assert_array_equal(alpha, data.Z[y])  # every word is of its latent's concept
        assert beta.min() >= 0 and beta.max() < s_c
    tokens = np.arange(spec.n_w)
    np.testing.assert_array_equal(data.word_concept * s_c + data.word_beta, tokens)
    np.testing.assert_array_equal(data.word_mu, data.mu[data.word_beta])
    np.testing.assert_array_equal(
        data.train_counts, np.bincount(data.train_x.ravel(), minlength=120)
    )
    assert data.seen.sum() == np.count_nonzero(data.train_counts)
    assert data.train_x.dtype == np.int32 and data.Z.dtype == np.int32


def test_reproducible_and_seeded():
    a, b = make_data(TINY), make_data(TINY)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    c = make_data(TINY.replace(data_seed=1))
    assert not np.array_equal(a.Z, c.Z) and not np.array_equal(a.train_x, c.train_x)
    # training settings do not change the data set
    d = make_data(TINY.replace(lr=0.5, d=8, layernorm=True, epochs=3))
    np.testing.assert_array_equal(a.train_x, d.train_x)


def test_word_law():
    np.testing.assert_allclose(word_law("uniform", 4), 0.25)
    z = word_law("zipf", 5)
    np.testing.assert_allclose(z * np.sum(1 / np.arange(1, 6)), 1 / np.arange(1, 6))
    assert np.isclose(z.sum(), 1.0)


@pytest.mark.parametrize("law", ["uniform", "zipf"])
def test_frequencies_follow_the_law(law):
    """Monte Carlo: word-index frequencies of 2000 x 10 positions vs mu (chi-square-sized
    tolerance), and the latents' concepts are uniform over [n_c]."""
    spec = FeatureCollapseSpec(n_c=3, n_w=30, L=10, K=400, d=4, nspl=5, law=law, batch_size=10)
    data = make_data(spec)
    beta = data.train_x % spec.s_c
    freq = np.bincount(beta.ravel(), minlength=spec.s_c) / beta.size
    se = np.sqrt(data.mu * (1 - data.mu) / beta.size)
    assert np.all(np.abs(freq - data.mu) < 5 * se)
    conc = np.bincount(data.Z.ravel(), minlength=3) / data.Z.size
    assert np.all(np.abs(conc - 1 / 3) < 5 * np.sqrt(2 / 9 / data.Z.size))


def test_all_latents():
    spec = FeatureCollapseSpec(n_c=3, n_w=12, L=3, K=27, d=4, nspl=2, latents="all", batch_size=9)
    Z = make_data(spec).Z
    assert Z.shape == (27, 3) and len({tuple(z) for z in Z}) == 27
