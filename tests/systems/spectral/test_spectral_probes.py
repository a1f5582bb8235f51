"""kNN and ridge linear probes vs scikit-learn, on separable and unstructured synthetic data."""

import numpy as np
import pytest
from sklearn.linear_model import RidgeClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler

from ufm.data.latent import latent_factor_data
from ufm.systems import spectral as sp


def _split(data, n_train):
    return (
        data.features[:n_train],
        data.labels[:n_train],
        data.features[n_train:],
        data.labels[n_train:],
    )


# all data sets: 300 x 16, 4 classes, split 200 / 100 (one compilation per probe setting)


def test_separable_data_is_classified_perfectly():
    data = latent_factor_data(300, 16, 4, n_classes=4, class_sep=12.0, noise_std=0.1, seed=0)
    tr_x, tr_y, te_x, te_y = _split(data, 200)
    assert sp.knn_accuracy(tr_x, tr_y, te_x, te_y) == 1.0
    assert sp.knn_accuracy(tr_x, tr_y, te_x, te_y, metric="euclidean", k=5, temperature=None) == 1.0
    assert sp.ridge_probe_accuracy(tr_x, tr_y, te_x, te_y) == 1.0


def test_unstructured_labels_give_chance():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((300, 16))
    y = rng.permutation(np.arange(300) % 4)
    assert sp.knn_accuracy(x[:200], y[:200], x[200:], y[200:]) < 0.45
    assert sp.ridge_probe_accuracy(x[:200], y[:200], x[200:], y[200:]) < 0.45


def test_knn_majority_vote_matches_sklearn():
    data = latent_factor_data(300, 16, 3, n_classes=4, class_sep=1.5, noise_std=0.5, seed=2)
    tr_x, tr_y, te_x, te_y = _split(data, 200)
    ref = KNeighborsClassifier(n_neighbors=5).fit(tr_x, tr_y).predict(te_x)
    got = sp.knn_accuracy(tr_x, tr_y, te_x, te_y, metric="euclidean", k=5, temperature=None)
    assert got == pytest.approx(np.mean(ref == te_y))
    assert 0.4 < got < 1.0  # a non-trivial case


def test_ridge_probe_matches_sklearn():
    data = latent_factor_data(300, 16, 3, n_classes=4, class_sep=1.5, noise_std=0.5, seed=3)
    tr_x, tr_y, te_x, te_y = _split(data, 200)
    scaler = StandardScaler().fit(tr_x)
    # sklearn regresses on +-1 targets: W doubles and the intercepts shift by one constant,
    # so the argmax predictions coincide; alpha = ridge * n_train
    clf = RidgeClassifier(alpha=0.1 * 200).fit(scaler.transform(tr_x), tr_y)
    ref = np.mean(clf.predict(scaler.transform(te_x)) == te_y)
    assert sp.ridge_probe_accuracy(tr_x, tr_y, te_x, te_y, ridge=0.1) == pytest.approx(ref)


def test_bad_input():
    x, y = np.ones((10, 3)), np.zeros(10, dtype=int)
    with pytest.raises(ValueError, match="k must"):
        sp.knn_accuracy(x, y, x, y, k=11)
    with pytest.raises(ValueError, match="metric"):
        sp.knn_accuracy(x, y, x, y, metric="l1")
    with pytest.raises(ValueError, match="train_y"):
        sp.ridge_probe_accuracy(x, y.astype(float), x, y)
    with pytest.raises(ValueError, match="dim"):
        sp.ridge_probe_accuracy(x, y, np.ones((10, 4)), y)
    with pytest.raises(ValueError, match="ridge"):
        sp.ridge_probe_accuracy(x, y, x, y, ridge=0.0)
