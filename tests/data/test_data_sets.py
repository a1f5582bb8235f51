"""ufm.data: digits split, Gaussian mixture, user-array and .npy-folder loaders."""

import numpy as np
import pytest

from ufm import data

sklearn = pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def digits():
    return data.load_digits()


def test_digits_sizes_and_split(digits):
    from sklearn.datasets import load_digits as sk

    raw = sk()
    assert (digits.n_train, digits.n_test, digits.input_dim) == (1438, 359, 64)
    assert digits.n_train + digits.n_test == raw.data.shape[0]
    assert digits.x_train.dtype == np.float32 and digits.y_train.dtype == np.int32
    # stratified: per class, test count = round(0.2 n_c) with halves up
    counts = np.bincount(raw.target)
    expected = np.floor(0.2 * counts + 0.5).astype(int)
    np.testing.assert_array_equal(np.bincount(digits.y_test, minlength=10), expected)
    np.testing.assert_array_equal(np.bincount(digits.y_train, minlength=10), counts - expected)
    # the split is a partition of the original rows, with labels carried along
    tr, te = data.stratified_split(raw.target, 0.2, 0)
    assert np.intersect1d(tr, te).size == 0 and np.union1d(tr, te).size == raw.target.size
    np.testing.assert_array_equal(digits.x_train, (raw.data[tr] / 16).astype(np.float32))
    np.testing.assert_array_equal(digits.y_test, raw.target[te])
    # fixed: the same call gives the same split; another seed a different one
    again = data.load_digits()
    np.testing.assert_array_equal(again.y_train, digits.y_train)
    tr1, _ = data.stratified_split(raw.target, 0.2, 1)
    assert not np.array_equal(tr, tr1)


def test_digits_scalings_and_images(digits):
    assert digits.x_train.min() == 0.0 and digits.x_train.max() == 1.0
    img = digits.images("test")
    assert img.shape == (359, 1, 8, 8)
    np.testing.assert_array_equal(img[:, 0].reshape(359, 64), digits.x_test)
    std = data.load_digits(scaling="standard", dtype=np.float64)
    mu, sd = std.x_train.mean(0), std.x_train.std(0)
    varying = sd > 0
    np.testing.assert_allclose(mu, 0.0, atol=1e-12)
    np.testing.assert_allclose(sd[varying], 1.0, rtol=1e-12)
    assert (~varying).sum() >= 1  # always-zero corner pixel(s) stay constant
    raw = data.load_digits(scaling="none", dtype=np.float64)
    np.testing.assert_allclose(raw.x_train / 16, digits.x_train, rtol=1e-7)
    with pytest.raises(ValueError, match="scaling"):
        data.load_digits(scaling="minmax")
    with pytest.raises(ValueError, match="test_fraction"):
        data.load_digits(test_fraction=1.0)


def test_gaussian_mixture_reproducible_and_hard():
    kw = {
        "num_classes": 4,
        "clusters_per_class": 5,
        "dim": 6,
        "n_train_per_class": 50,
        "n_test_per_class": 20,
    }
    a, b = data.gaussian_mixture(**kw, seed=3), data.gaussian_mixture(**kw, seed=3)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    c = data.gaussian_mixture(**kw, seed=4)
    assert not np.allclose(a.x_train, c.x_train)
    assert a.x_train.shape == (200, 6) and a.x_test.shape == (80, 6)
    assert np.bincount(a.y_train).tolist() == [50] * 4
    # sub-cluster structure: with zero noise every class holds exactly clusters_per_class points
    z = data.gaussian_mixture(**kw, cluster_std=0.0, seed=3, dtype=np.float64)
    for k in range(4):
        assert np.unique(z.x_train[z.y_train == k], axis=0).shape[0] == 5
    # far from linearly separable, yet nearest neighbours classify it (default sizes)
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    d = data.gaussian_mixture()
    lin = LogisticRegression(max_iter=2000).fit(d.x_train, d.y_train).score(d.x_test, d.y_test)
    knn = KNeighborsClassifier(5).fit(d.x_train, d.y_train).score(d.x_test, d.y_test)
    assert lin < 0.7 and knn > 0.95
    with pytest.raises(ValueError, match="clusters_per_class"):
        data.gaussian_mixture(clusters_per_class=0)
    with pytest.raises(ValueError, match="cluster_std"):
        data.gaussian_mixture(cluster_std=-1.0)


def test_load_arrays_shapes_labels_and_errors():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 4, 5, 3))  # NHWC images
    y1h = np.eye(3)[[0, 1, 2, 0, 1, 2]]
    ds = data.load_arrays(x, y1h, x[:3], [2, 1, 0], channels_last=True, dtype=np.float64)
    assert ds.image_shape == (3, 4, 5) and ds.input_dim == 60 and ds.num_classes == 3
    np.testing.assert_array_equal(ds.images()[1], np.moveaxis(x[1], -1, 0))
    np.testing.assert_array_equal(ds.y_train, [0, 1, 2, 0, 1, 2])
    flat = data.load_arrays(x.reshape(6, -1), [0, 1, 2, 0, 1, 2], x[:3].reshape(3, -1), [0, 0, 1])
    assert flat.image_shape is None
    with pytest.raises(ValueError, match="holds no images"):
        flat.images()
    np.testing.assert_array_equal(data.one_hot(ds.y_train, 3), y1h)
    bad = [
        ({"y_train": [0, 1, 2]}, "y_train must have one label per row of x_train"),
        ({"x_test": np.zeros((3, 5))}, "x_test samples must have the shape"),
        ({"y_train": [0.5, 1, 2, 0, 1, 2]}, "integer class labels"),
        ({"y_train": [0, 1, -1, 0, 1, 2]}, "negative label"),
        ({"y_train": [0, 0, 0, 0, 2, 2]}, r"no sample of class\(es\) \[1\]"),
        ({"num_classes": 2}, "num_classes=2"),
        ({"y_test": np.ones((3, 3))}, "not one-hot"),
    ]
    base = {"x_train": np.zeros((6, 4)), "y_train": [0, 1, 2, 0, 1, 2], "x_test": np.zeros((3, 4))}
    for change, message in bad:
        kw = {**base, "y_test": [0, 1, 2], **change}
        with pytest.raises(ValueError, match=message):
            data.load_arrays(**kw)


def test_load_npy_folder(tmp_path):
    rng = np.random.default_rng(1)
    arrays = {
        "x_train": rng.random((10, 2, 3, 3)),
        "y_train": np.arange(10) % 4,
        "x_test": rng.random((5, 2, 3, 3)),
        "y_test": np.arange(5) % 4,
    }
    for k, v in arrays.items():
        np.save(tmp_path / f"{k}.npy", v)
    for mmap in (False, True):
        ds = data.load_npy_folder(tmp_path, mmap=mmap, dtype=np.float64)
        assert ds.name == tmp_path.name and ds.image_shape == (2, 3, 3) and ds.num_classes == 4
        np.testing.assert_array_equal(ds.images("test"), arrays["x_test"])
    np.save(tmp_path / "y_test.npy", np.arange(4) % 4)
    with pytest.raises(ValueError, match="y_test must have one label per row of x_test"):
        data.load_npy_folder(tmp_path)
    (tmp_path / "y_test.npy").unlink()
    (tmp_path / "x_train.npy").unlink()
    with pytest.raises(FileNotFoundError, match="missing x_train.npy, y_test.npy"):
        data.load_npy_folder(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        data.load_npy_folder(tmp_path / "nowhere")


def test_scikit_learn_is_optional(monkeypatch):
    import subprocess
    import sys

    code = "import sys, ufm.data, ufm.nets; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # simulate a missing install
    with pytest.raises(ImportError, match=r"ufm\[nets\]"):
        data.load_digits()
