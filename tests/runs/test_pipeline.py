"""The shared pipeline (ufm.run_points) in sweeps and the landscape job: polish stage, Hessian
classification, planted and origin starts, resume with the (config_hash, source, seed) key, the
deep-UFM model, and landscape == sweep == a hand-written reference on the same configuration."""

import dataclasses
import hashlib
import json
import shutil
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import ROOT, run_script

import ufm
from ufm.runs.sweep import run_chunk
from ufm.runs.sweep_spec import OptimizerSettings, _toml

# K = 3, n = 2, d = 3: CE no bias has saddle_dims (1,), MSE no bias (1, 2)
TOML = """
name = "p"
analyses = ["closed_form", "hessian", "metrics"]

[grid]
K = 3
n = 2
d = 3
loss = ["ce", "mse"]
bias = "none"
lambda_W = 5e-3
lambda_H = 5e-3

[seeds]
count = 4
init_scale = 0.1

[starts]
planted_per_dim = 2
origin = true

[optimizer]
name = "gd"
learning_rate = 1.0
max_steps = 3000
tol = 1e-7
chunk = 250

[chunking]
seeds_per_chunk = 4
"""
SETTINGS = OptimizerSettings(name="gd", learning_rate=1.0, max_steps=3000, tol=1e-7, chunk=250)
CE = ufm.UFMSpec(K=3, n=2, d=3, loss="ce", bias="none")
ANALYSES = (("closed_form", ()), ("hessian", ()), ("metrics", ()))
EXACT = ("source", "seed", "dim", "status", "steps", "class", "polished", "n_neg", "rank")
CLOSE = ("f", "f_star", "f_gap", "lambda_min", "certificate_gap", "nc1_pinv", "nc2_etf_W")


def _spec(text=TOML, **changes):
    raw = _toml.loads(text)
    for k, v in changes.items():
        both = isinstance(v, dict) and isinstance(raw.get(k), dict)
        raw[k] = {**raw[k], **v} if both else v
    return ufm.runs.SweepSpec.from_dict(raw, name="p", text=text)


def _rows(folder, loss=None):
    t = ufm.runs.load_results_arrow(folder)
    cols = {k: np.array(t[k].to_pylist()) for k in t.column_names}
    if loss is not None:
        m = cols["loss"] == loss
        cols = {k: v[m] for k, v in cols.items()}
    order = np.lexsort((cols["seed"], cols["source"]))
    return {k: v[order] for k, v in cols.items()}


def _assert_rows_equal(a, b, skip=()):
    for k in set(EXACT) - set(skip):
        assert a[k].tolist() == b[k].tolist(), k
    for k in CLOSE:
        np.testing.assert_allclose(
            a[k].astype(float), b[k].astype(float), rtol=1e-12, atol=1e-14, err_msg=k
        )
    # after the polish (to <= 1e-10) the gradient norms are rounding noise (~1e-14): the landscape
    # records NC metrics along its runs (XLA path), the sweep takes the native optimiser kernel;
    # the two agree to rounding (docs/kernels.md), so the noise differs in its last digits
    np.testing.assert_allclose(
        a["grad_norm"].astype(float), b["grad_norm"].astype(float), atol=5e-14, err_msg="grad_norm"
    )


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    out = tmp_path_factory.mktemp("planted")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ufm.CounterexampleWarning)
        summary = ufm.run_sweep(_spec(), out, progress=False)
    assert summary.seeds_run == (4 + 2 + 1) + (4 + 4 + 1) and summary.seeds_skipped == 0
    return out


# -- landscape == sweep == reference -----------------------------------------------------------


def _reference(spec, num_random, planted_per_dim):
    """The pipeline written out by hand with the public primitives (no ufm.runs.pipeline)."""
    key = jax.random.key(0)
    dims = ufm.saddle_dims(spec)
    starts = [ufm.init_batch(spec, key, seeds=np.arange(num_random), scale=0.1)]
    P = planted_per_dim * len(dims)
    pl = ufm.init_batch(spec, jax.random.fold_in(key, 1), seeds=np.arange(P), scale=0.1)
    dp = np.array([dims[i % len(dims)] for i in range(P)])
    W, H = np.array(pl.W), np.array(pl.H)
    for i, k in enumerate(dp):
        W[i, :, k:] = 0.0
        H[i, k:, :] = 0.0
    starts.append(ufm.UFMParams(jnp.asarray(W), jnp.asarray(H), None))
    starts.append(jax.tree_util.tree_map(lambda x: jnp.zeros_like(x[:1]), starts[0]))
    p0 = jax.tree_util.tree_map(lambda *x: jnp.concatenate(x), *starts)
    res = ufm.optimize(spec, p0, optimizer=ufm.gd(1.0), max_steps=3000, tol=1e-7, chunk=250)
    # gradient descent never leaves the coordinate subspaces: the padding stays exactly zero
    for i, k in enumerate(dp):
        assert not np.any(np.asarray(res.params.W[num_random + i, :, k:]))
    pol = ufm.polish(spec, res.params, tol=1e-10)
    rec = ufm.classify_batch(spec, pol.params, warn=False)
    f_star = ufm.optimal_value(spec)
    return {
        "source": np.array(["random"] * num_random + ["planted"] * P + ["origin"]),
        "dim": np.concatenate([[spec.d] * num_random, dp, [0]]),
        "steps": np.asarray(res.steps),
        "f": np.asarray(pol.loss),
        "f_gap": np.asarray(pol.loss) - f_star,
        "class": rec["class"],
        "lambda_min": rec["lambda_min"],
    }


def test_landscape_sweep_and_reference_agree(planted, tmp_path):
    """One configuration (CE, K = d = 3) three ways: ufm landscape (its own results folder, one
    device), ufm sweep (8 devices, chunks padded) and the hand-written reference: the same rows,
    start by start."""
    config = ufm.LandscapeConfig(
        K=(3,),
        n=2,
        variants=(("ce", "none"),),
        lambda_W=(5e-3,),
        lambda_H=(5e-3,),
        seeds=4,
        starts=ufm.StartSettings(2, True),
        optimizer=SETTINGS,
        record_every=50,
    )
    (spec,) = config.specs()
    assert spec == CE
    run = ufm.run_landscape(config, tmp_path / "land", progress=False)
    rows, (trace,) = run.rows, run.traces.values()
    assert trace["loss"].shape[1] == 4  # random starts only
    assert ufm.load_results(tmp_path / "land").shape[0] == len(rows["seed"])
    order = np.lexsort((rows["seed"], rows["source"]))
    land = {k: np.asarray(v)[order] for k, v in rows.items()}
    sweep = _rows(planted, loss="ce")
    _assert_rows_equal(land, sweep)

    ref = _reference(spec, 4, 2)
    i = np.lexsort((np.concatenate([np.arange(4), np.arange(2), [0]]), ref["source"]))
    ref = {k: v[i] for k, v in ref.items()}
    for k in ("source", "dim", "steps", "class"):
        assert ref[k].tolist() == sweep[k].tolist(), k
    for k in ("f", "f_gap", "lambda_min"):
        np.testing.assert_allclose(ref[k], sweep[k], rtol=1e-12, atol=1e-14, err_msg=k)


# -- polish stage ------------------------------------------------------------------------------


def test_polish_reaches_closed_form(planted):
    r = _rows(planted)
    rnd = r["source"] == "random"
    assert r["polished"].all() and np.all(r["grad_norm"] <= 1e-10)
    assert np.all(np.abs(r["f_gap"][rnd]) <= 1e-10 * np.maximum(1.0, np.abs(r["f_star"][rnd])))
    assert np.all(r["first_order_grad_norm"] <= 1e-7) and np.all(r["polish_iterations"] <= 30)


def test_polish_stage_from_loose_first_order_points():
    """tol = 1e-3: the first-order end points are far from f*; Newton takes every one of them
    to f - f* <= 1e-10 (relative), 'none' leaves them. A float32 run is polished (and analysed)
    in float64 under 'auto', to the float64 tolerance: the same end points as the float64 run
    to 1e-10 (it used to skip the stage while run.json recorded polish_tol 1e-10)."""
    seeds = np.arange(8)
    mesh = ufm.runs.seed_mesh(8)
    kw = dict(analyses=(("closed_form", ()),))
    loose = OptimizerSettings(name="gd", learning_rate=1.0, max_steps=3000, tol=1e-3, chunk=250)
    raw = run_chunk(CE, seeds, mesh, optimizer=dataclasses.replace(loose, polish="none"), **kw)
    pol = run_chunk(CE, seeds, mesh, optimizer=loose, **kw)
    f_star = ufm.optimal_value(CE)
    assert np.all(raw["f_gap"] > 1e-10) and not raw["polished"].any()
    assert np.all(np.abs(pol["f_gap"]) <= 1e-10 * max(1.0, f_star)) and pol["polished"].all()
    np.testing.assert_array_equal(raw["first_order_grad_norm"], pol["first_order_grad_norm"])
    np.testing.assert_array_equal(raw["grad_norm"], raw["first_order_grad_norm"])
    f32 = run_chunk(CE.replace(dtype="float32"), seeds, mesh, optimizer=loose, **kw)
    assert f32["polished"].all() and (f32["polish_iterations"] > 0).all()
    assert np.all(f32["grad_norm"] <= 1e-10) and np.all(f32["at_optimum_rtol"] == 1e-8)
    assert np.all(np.abs(f32["f_gap"]) <= 1e-10 * max(1.0, f_star)) and f32["at_optimum"].all()


def test_polish_settings_parse_and_hash():
    spec = _spec(optimizer={"polish": "newton", "polish_tol": 1e-11})
    assert (spec.optimizer.polish, spec.optimizer.polish_tol) == ("newton", 1e-11)
    c = _spec().expand()[0][0]
    none = _spec(optimizer={"polish": "none"})
    h = none.expand()[0][0].hash
    # polish = "none" hashes as before the stage existed: old stores stay resumable
    doc = {
        "model": "ufm",
        "spec": c.spec.as_dict(),
        "optimizer": {
            k: v for k, v in none.optimizer.as_dict().items() if not k.startswith("polish")
        },
        "analyses": {"closed_form": {}, "hessian": {}, "metrics": {}},
        "seeds": {"base": 0, "init_scale": 0.1},
    }
    blob = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    assert h == hashlib.sha256(blob.encode()).hexdigest()[:16] and h != c.hash
    # the starts are not hashed: more planted starts extend a sweep
    assert _spec(starts={"planted_per_dim": 5}).expand()[0][0].hash == c.hash


@pytest.mark.parametrize(
    "change,key",
    [
        ({"optimizer": {"polish": "fast"}}, "optimizer.polish"),
        ({"optimizer": {"polish_tol": -1.0}}, "optimizer.polish_tol"),
        ({"starts": {"origin": 1}}, "starts.origin"),
        ({"starts": {"planted_per_dim": -2}}, "starts.planted_per_dim"),
        ({"starts": {"planted": 2}}, "starts.planted"),
        ({"analyses": {"hessian": {"methd": "dense"}}}, "analyses.hessian.methd"),
    ],
)
def test_bad_settings_name_the_key(change, key):
    with pytest.raises(ufm.SpecError, match=key.replace(".", r"\.")):
        _spec(**change)


# -- Hessian classification and planted starts -----------------------------------------------


def test_hessian_classes_in_sweep(planted):
    r = _rows(planted)
    rnd, pl, orig = (r["source"] == s for s in ("random", "planted", "origin"))
    assert (r["class"][rnd] == "global_min").all()
    assert (r["class"][~rnd] == "strict_saddle").all() and (r["n_neg"][~rnd] > 0).all()
    assert not r["counterexample"].any() and (r["error"] == None).all()  # noqa: E711
    # planted start i lies in R^{d'} with d' = saddle_dims[i % len]; it ends at rank <= d'
    for loss in ("ce", "mse"):
        dims = ufm.saddle_dims(CE.replace(loss=loss))
        m = pl & (r["loss"] == loss)
        assert sorted(r["seed"][m].tolist()) == list(range(2 * len(dims)))
        assert r["dim"][m].tolist() == [dims[s % len(dims)] for s in r["seed"][m]]
        assert (r["rank"][m] <= r["dim"][m]).all()
    assert (r["dim"][orig] == 0).all() and (r["rank"][orig] == 0).all()
    # theory.md section 3: lambda_min <= the curvature bound at planted saddles
    b = ~rnd & np.isfinite(r["curvature_bound"].astype(float))
    assert b.sum() >= 4 and np.all(r["lambda_min"][b] <= r["curvature_bound"][b] + 1e-12)
    text = ufm.report.sweep_report(planted, figures=False)
    assert "Hessian classes" in text and "strict_saddle" in text and "counterexamples" in text
    st = ufm.report.sweep_status(planted)
    assert (st.done, st.total, st.duplicates) == (16, 16, 0)


def test_hessian_check_rejects_models_without_rules(monkeypatch):
    from ufm.core import registry

    @dataclasses.dataclass(frozen=True)
    class Toy:
        width: int = 2

    system = ufm.core.System(
        name="toy",
        spec_type=Toy,
        loss=lambda s, p: 0.0,
        init=lambda s, k, scale=None: 0.0,
        examples=lambda: (Toy(),),
    )
    monkeypatch.setitem(registry._BY_NAME, "toy", system)
    monkeypatch.setitem(registry._BY_TYPE, Toy, system)
    spec = ufm.load_sweep_spec(
        'model = "toy"\nanalyses = ["hessian"]\n[grid]\nwidth = [1, 2]\n[seeds]\ncount = 1\n'
    )
    configs, invalid = spec.expand()
    assert not configs and len(invalid) == 2
    assert all("analysis 'hessian'" in p.error and "'toy' system" in p.error for p in invalid)


def test_counterexamples_recorded_and_warned_once_per_chunk():
    """d = 1 (no closed form; the certificate fails at the minima, which are not certified):
    zero_rtol = 10 counts every Hessian eigenvalue as zero, far more than the predicted 0 zero
    modes at every tolerance: all are flagged (degenerate) and each chunk warns once. (A
    certified global minimum is never flagged, whatever its zero modes.)"""
    mesh = ufm.runs.seed_mesh(8)
    an = (("hessian", (("zero_rtol", 10.0),)),)
    low = CE.replace(d=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        chunks = [
            run_chunk(low, s, mesh, optimizer=SETTINGS, analyses=an)
            for s in (np.arange(3), np.arange(3, 4))
        ]
    found = [w for w in caught if issubclass(w.category, ufm.CounterexampleWarning)]
    assert len(found) == 2 and "ce-none K=3" in str(found[0].message)
    for c in chunks:
        assert c["counterexample"].all() and set(c["class"]) == {"degenerate"}


# -- resume with planted starts --------------------------------------------------------------


def test_resume_with_planted_starts_is_exact(planted, tmp_path):
    ref = _rows(planted)
    files = sorted((planted / "data").glob("*.parquet"))
    assert len(files) >= 3
    # a killed run leaves a subset of the (atomically written) chunk files
    out = tmp_path / "resumed"
    shutil.copytree(planted, out)
    lost = sorted((out / "data").glob("*.parquet"))[::2]
    lost_rows = sum(pq.read_metadata(p).num_rows for p in lost)
    for p in lost:
        p.unlink()
    s = ufm.run_sweep(_spec(), out, progress=False)
    assert (s.seeds_run, s.seeds_skipped) == (lost_rows, 16 - lost_rows)
    _assert_rows_equal(_rows(out), ref)
    # more planted starts extend the sweep: only the new keys run, old rows unchanged
    s = ufm.run_sweep(_spec(starts={"planted_per_dim": 3}), out, progress=False)
    assert (s.seeds_run, s.seeds_skipped) == (1 + 2, 16)
    more = _rows(out)
    assert len(more["seed"]) == 19 and ufm.report.sweep_status(out).duplicates == 0
    assert set(more["class"][more["source"] == "planted"]) == {"strict_saddle"}


def test_old_store_without_source_column(planted, tmp_path):
    """Files written before the `source` column hold random starts; resuming with [starts]
    runs exactly the planted and origin starts."""
    out = tmp_path / "old"
    shutil.copytree(planted, out)
    for p in (out / "data").glob("*.parquet"):
        t = pq.read_table(p)
        keep = np.array(t["source"].to_pylist()) == "random"
        t = t.filter(pa.array(keep)).drop_columns(["source", "dim"])
        p.unlink()
        if t.num_rows:
            pq.write_table(t, p)
    assert ufm.runs.store.ResultStore(out).done_seeds() == {
        h: {0, 1, 2, 3} for h in ufm.runs.store.ResultStore(planted).done_seeds()
    }
    s = ufm.run_sweep(_spec(), out, progress=False)
    assert (s.seeds_run, s.seeds_skipped) == ((2 + 1) + (4 + 1), 8)
    r = _rows(out)
    _assert_rows_equal(r, _rows(planted), skip=("dim",))
    assert set(r["dim"][r["source"] == "random"]) == {None}  # not in the old files


# -- starts ------------------------------------------------------------------------------------


def test_make_starts_do_not_depend_on_the_batch():
    spec = CE.replace(loss="mse")  # saddle_dims (1, 2)
    src, seed = ufm.runs.start_keys(spec, 3, ufm.StartSettings(planted_per_dim=2, origin=True))
    assert src.tolist() == ["random"] * 3 + ["planted"] * 4 + ["origin"]
    p, meta = ufm.make_starts(spec, src, seed)
    assert meta["dim"].tolist() == [3, 3, 3, 1, 2, 1, 2, 0]
    perm = np.array([7, 3, 0, 5, 1, 6, 2, 4])
    q, meta_q = ufm.make_starts(spec, src[perm], seed[perm])
    for a, b in zip(jax.tree_util.tree_leaves(p), jax.tree_util.tree_leaves(q)):
        np.testing.assert_array_equal(np.asarray(a)[perm], np.asarray(b))
    np.testing.assert_array_equal(meta["dim"][perm], meta_q["dim"])
    W = np.asarray(p.W)
    assert not W[7].any() and not np.asarray(p.H)[7].any()
    for i, k in zip(range(3, 7), meta["dim"][3:7]):
        assert not W[i, :, k:].any() and np.all(W[i, :, :k] != 0)
    with pytest.raises(ValueError, match="planted starts are not available for the 'deep_ufm'"):
        ufm.runs.start_keys(
            ufm.DeepUFMSpec(K=3, n=2, L=2, widths=4), 2, ufm.StartSettings(planted_per_dim=1)
        )


# -- deep UFM ----------------------------------------------------------------------------------


def test_deep_ufm_sweep(tmp_path):
    """model = "deep_ufm": f_star is L_DNC (ufm.deep.dnc_loss), f_gap = f - L_DNC >= 0 at L = 2 (DNC
    is optimal there) and = 0 for the seeds that reach DNC; the origin (a strict local minimum for
    L >= 2) stays at f = 1/2; per-layer DNC metrics; invalid points named up front."""
    text = (ROOT / "experiments/sweeps/deep_tiny.toml").read_text()
    full = ufm.load_sweep_spec(ROOT / "experiments/sweeps/deep_tiny.toml")
    configs, invalid = full.expand()
    assert not invalid and [c.spec.L for c in configs] == [2, 3]
    assert all(isinstance(c.spec, ufm.DeepUFMSpec) for c in configs)
    spec = _spec(text, grid={"L": 2}, seeds={"count": 3})
    s = ufm.run_sweep(spec, tmp_path, devices=2, progress=False)
    assert s.seeds_run == 4
    r = _rows(tmp_path)
    (cfg,) = spec.expand()[0]
    L_dnc = float(ufm.deep.dnc_loss(cfg.spec))
    assert set(r["model"]) == {"deep_ufm"} and np.all(r["f_star"] == L_dnc)
    np.testing.assert_array_equal(r["f_gap"], r["f"] - L_dnc)
    orig = r["source"] == "origin"
    assert r["f"][orig].tolist() == [0.5] and r["steps"][orig].tolist() == [0]
    rnd = ~orig
    assert np.all(r["f_gap"][rnd] >= -1e-12) and np.min(np.abs(r["f_gap"][rnd])) <= 1e-10
    assert np.all(r["grad_norm"][r["polished"]] <= 1e-10) and r["polished"][rnd].any()
    for k in ("dnc1_pinv_H1", "dnc1_quot_Z2", "dnc2_H2", "rank_H2", "dnc3_papyan_W2"):
        assert k in r and np.isfinite(r[k].astype(float)).all()
    grid = {"L": 2, "activation": ["relu", "tanh"], "widths": [2, 6]}
    configs, invalid = _spec(text, grid=grid).expand()
    errors = [p.error for p in invalid]
    assert len(configs) == 1 and len(errors) == 3 and all("dnc_loss" in e for e in errors)
    assert any("tanh" in e for e in errors) and any("width" in e for e in errors)
    configs, invalid = _spec(text, starts={"planted_per_dim": 1}).expand()
    assert not configs and all("starts.planted_per_dim" in p.error for p in invalid)


def test_cpu_analyses_do_not_deadlock():
    """Regression: ufm.classify_batch's default batch (800 points per step) deadlocked jaxlib's
    CPU LAPACK kernels (two batched SVDs holding both pool threads, jax 0.10.2, 2 cores) on the
    first chunk of a d = K sweep, one device. The pipeline's analyses go one point at a time on
    CPU. In a subprocess so that a hang fails the test instead of freezing the suite."""
    script = (
        "import jax, numpy as np\n"
        "jax.config.update('jax_enable_x64', True)\n"
        "import ufm\n"
        "spec = ufm.UFMSpec(K=4, n=5, d=4, loss='ce', bias='free')\n"
        "p0, _ = ufm.make_starts(spec, np.full(2048, 'random', dtype=object), np.arange(2048))\n"
        "out = ufm.run_points(spec, p0, optimizer=ufm.OptimizerSettings(max_steps=5, chunk=5,\n"
        "                     polish='none'), analyses=[('hessian', (('warn', False),)),\n"
        "                                                ('metrics', ())])\n"
        "print('rows', len(out.columns['class']), len(out.columns['nc1_pinv']))\n"
    )
    r = run_script(script)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "rows 2048 2048" in r.stdout


def test_hessian_analysis_rejects_kinked_activations():
    """ReLU end points sit at kinks (no Hessian): the grid point is named invalid up front, while
    a smooth activation with the same analyses is accepted."""
    base = (
        'model = "deep_ufm"\nanalyses = ["hessian"]\n[grid]\nK = 3\nn = 2\nL = 2\nwidths = 4\n'
        'lambda_H1 = 0.005\nlambda_W = 0.005\nactivation = ["relu", "leaky_relu", "tanh"]\n'
        "[seeds]\ncount = 1\n"
    )
    configs, invalid = ufm.load_sweep_spec(base).expand()
    assert [c.spec.activation for c in configs] == ["tanh"]
    assert len(invalid) == 2
    assert all("analysis 'hessian'" in p.error and "kink" in p.error for p in invalid)


# -- failed seeds and float32 (issue 10, items 2, 4, 7) -------------------------------------------


def test_failed_seeds_never_reach_an_analysis():
    """Seeds 2 (NaN start) and 3 (a huge start: diverges) fail; with a divergence threshold of
    1e300 seed 3 instead runs into inf / NaN. Their analysis columns are masked (nan, -1, False)
    instead of holding finite values that look valid; the hessian analysis classifies a
    non-finite end point non_finite (no counterexample, no LAPACK call); the good seeds' columns
    are exactly those of a run without the failed ones."""
    spec = ufm.UFMSpec(K=3, n=2, d=3, loss="mse")
    p0 = ufm.init_batch(spec, jax.random.key(0), 4, scale=0.1)
    p0 = p0._replace(W=p0.W.at[2].set(jnp.nan).at[3].multiply(1e4), H=p0.H.at[3].multiply(1e4))
    analyses = (("closed_form", ()), ("hessian", ()), ("metrics", ()))
    opt = OptimizerSettings(name="gd", learning_rate=0.5, max_steps=500, tol=1e-7, chunk=250)
    good = ufm.run_points(
        spec, jax.tree_util.tree_map(lambda x: x[:2], p0), optimizer=opt, analyses=analyses
    ).columns
    for threshold in (1e10, 1e300):
        o = dataclasses.replace(opt, divergence_threshold=threshold)
        with warnings.catch_warnings():
            warnings.simplefilter("error", ufm.CounterexampleWarning)
            cols = ufm.run_points(spec, p0, optimizer=o, analyses=analyses).columns
        assert cols["status"][2] == "nan" and cols["status"][3] in ("diverged", "nan")
        for k in ("f_gap", "nc1_pinv", "nc2_etf_W", "nc3_zhu", "nc4_ncc"):
            assert np.isnan(cols[k][2:]).all(), k
        assert not cols["at_optimum"][2:].any() and (cols["rank_M"][2:] == -1).all()
        assert cols["class"][2] == "non_finite" and not cols["counterexample"].any()
        assert not cols["polished"][2:].any()
        for k in ("f", "f_gap", "nc1_pinv", "lambda_min", "class", "n_zero", "at_optimum"):
            np.testing.assert_array_equal(cols[k][:2], good[k][:2], err_msg=k)
