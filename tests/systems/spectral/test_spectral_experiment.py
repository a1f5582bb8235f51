"""Training seeds of a spec and the checkpoint measurements, against independent recomputations.

One short float64 run (whitening on the feature side, latent-factor data) trains seeds 0 and 2
together and seed 2 alone: seed 2's rows must not depend on the batch it ran in. The stored
measures at the last checkpoint are then recomputed from the final parameters with NumPy (forward
pass, eigenvalues, singular values, ZCA whitening of each evaluation batch, cosine kNN) and
scikit-learn (``RidgeClassifier`` for the linear probe), sharing no code with the package.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from sklearn.linear_model import RidgeClassifier

from ufm.systems import spectral as sp
from ufm.systems.spectral.data import eval_batches
from ufm.systems.spectral.experiment import EvalSettings
from ufm.systems.spectral.model import network

SPEC = sp.SpectralSpec(
    data="latent",
    latent_samples=150,
    latent_dim=8,
    latent_rank=3,
    latent_classes=3,
    widths=(12,),
    proj_widths=(12,),
    proj_dim=6,
    batch_size=24,
    method="whiten",
    activation="tanh",
    epochs=3,
    checkpoints=1,
    lr=1e-2,
    dtype="float64",
)
SETTINGS = EvalSettings(knn_k=5, ridge=1e-2, rel=1e-3)


@pytest.fixture(scope="module")
def runs():
    both = sp.train_seeds(SPEC, [0, 2], settings=SETTINGS)
    alone = sp.train_seeds(SPEC, [2], settings=SETTINGS)
    return both, alone


def test_a_seeds_rows_do_not_depend_on_the_batch_of_seeds(runs):
    both, alone = runs
    rows_both = sp.rows_from_result(SPEC, [0, 2], both)
    rows_alone = sp.rows_from_result(SPEC, [2], alone)
    pick = rows_both["seed"] == 2
    assert pick.sum() == len(rows_alone["seed"]) == 2  # checkpoints at epochs 0 and 3
    assert rows_alone["epoch"].tolist() == [0, 3]
    for key, col in rows_alone.items():
        other = rows_both[key][pick]
        if key in ("label", "status"):
            assert other.tolist() == col.tolist()
        elif col.dtype == object:
            np.testing.assert_allclose(np.stack(other), np.stack(col), rtol=1e-9, atol=1e-12)
        else:
            np.testing.assert_allclose(other, col, rtol=1e-9, atol=1e-12, err_msg=key)
    # the two seeds did train differently (the comparison above is not vacuous)
    assert not np.allclose(rows_both["erank_z"][rows_both["seed"] == 0], rows_alone["erank_z"])
    assert np.all(np.isfinite(both.epoch_loss)) and both.status.tolist() == [0, 0]


def _forward(params_one, x):
    enc, proj = network(SPEC, params_one)
    h = x
    for layer in enc.layers:
        h = np.tanh(h @ np.asarray(layer.weight).T + np.asarray(layer.bias))
    z = h
    for i, layer in enumerate(proj.layers):
        z = z @ np.asarray(layer.weight).T + np.asarray(layer.bias)
        if i < len(proj.layers) - 1:
            z = np.tanh(z)
    return h, z


def _erank(x):
    lam = np.clip(np.linalg.eigvalsh(np.cov(x, rowvar=False)), 0, None)
    p = lam / lam.sum()
    p = p[p > 0]
    return float(np.exp(-np.sum(p * np.log(p)))), lam


def _rankme(x):
    s = np.linalg.svd(x, compute_uv=False)
    p = s / s.sum() + 1e-7
    return float(np.exp(-np.sum(p * np.log(p))))


def _zca(x, eps):
    xc = x - x.mean(axis=0)
    sigma = xc.T @ xc / (len(x) - 1)
    lam, u = np.linalg.eigh(sigma)
    g = np.maximum(lam, eps * np.trace(sigma)) ** -0.5
    return xc @ (u * g) @ u.T


def _knn(train, y_train, test, k, n_classes):
    a = train / np.linalg.norm(train, axis=1, keepdims=True)
    b = test / np.linalg.norm(test, axis=1, keepdims=True)
    sim = b @ a.T
    pred = []
    for row in sim:
        idx = np.argsort(-row)[:k]
        votes = np.zeros(n_classes)
        np.add.at(votes, y_train[idx], np.exp(row[idx] / 0.07))
        pred.append(int(np.argmax(votes)))
    return np.asarray(pred)


def _probe(train, y_train, test, ridge):
    mean, std = train.mean(axis=0), train.std(axis=0)
    clf = RidgeClassifier(alpha=ridge * len(train)).fit((train - mean) / std, y_train)
    return clf.predict((test - mean) / std)


def test_stored_measures_equal_an_independent_recomputation(runs):
    both, _ = runs
    rows = sp.rows_from_result(SPEC, [0, 2], both)
    data = sp.spec_data(SPEC)
    batches = eval_batches(SPEC, data.x_train.shape[0])
    assert batches.shape == (120 // 24, 24)
    for i, seed in enumerate((0, 2)):
        params = jax.tree_util.tree_map(lambda x, i=i: np.asarray(x[i]), both.params)
        h, z = _forward(params, np.asarray(data.x_train))
        h_te, z_te = _forward(params, np.asarray(data.x_test))
        row = (rows["seed"] == seed) & (rows["epoch"] == SPEC.epochs)
        got = {k: v[row][0] for k, v in rows.items()}
        er_z, lam_z = _erank(z)
        assert got["erank_z"] == pytest.approx(er_z, rel=1e-9)
        assert got["erank_h"] == pytest.approx(_erank(h)[0], rel=1e-9)
        assert got["rankme_z"] == pytest.approx(_rankme(z), rel=1e-9)
        assert got["count_z"] == np.sum(lam_z > 1e-3 * lam_z.max())
        np.testing.assert_allclose(got["spectrum_z"], np.sort(lam_z)[::-1] / lam_z.sum(), 1e-9)
        zb = [z[b] for b in batches]
        assert got["erank_zb"] == pytest.approx(np.mean([_erank(a)[0] for a in zb]), rel=1e-9)
        zhat = [_zca(a, SPEC.eps) for a in zb]
        assert got["erank_zhat"] == pytest.approx(np.mean([_erank(a)[0] for a in zhat]), 1e-8)
        assert got["erank_zhat"] == pytest.approx(SPEC.proj_dim, rel=1e-6)  # whitened batches
        y_tr, y_te = np.asarray(data.y_train), np.asarray(data.y_test)
        knn = _knn(z, y_tr, z_te, SETTINGS.knn_k, data.num_classes)
        assert got["knn_acc_z"] == pytest.approx(np.mean(knn == y_te), abs=1e-12)
        probe = _probe(h, y_tr, h_te, SETTINGS.ridge)
        assert got["probe_acc_h"] == pytest.approx(np.mean(probe == y_te), abs=1e-12)
