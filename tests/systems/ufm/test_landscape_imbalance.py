"""Imbalanced classes in ``ufm landscape`` and in sweeps (issue 16 item 6): class-size vectors on
the command line, in :class:`ufm.systems.ufm.LandscapeConfig` and as a list-valued ``n`` of a
TOML sweep; the convex reference attached once per configuration (``prepare_spec``), so that the
end points are judged against ``f*`` and certified global; bad inputs refused in one line.

Tiny sizes: one CE configuration with class sizes (4, 4, 1) (no closed form: ``f*`` is the convex
program's value) run through the CLI twice (the second run resumes).
"""

import pytest

import ufm
from ufm.cli.main import main
from ufm.systems.ufm import LandscapeConfig, with_convex_reference

SIZES = (4, 4, 1)
LAM = 5e-3


def test_cli_class_sizes_end_to_end_and_resume(tmp_path, capsys):
    out = tmp_path / "imb"
    argv = ["landscape", "--class-sizes", "4,4,1", "--loss", "ce", "--bias", "none"]
    argv += ["--lambda-W", str(LAM), "--lambda-H", str(LAM), "--seeds", "3", "--steps", "400"]
    argv += ["--out", str(out), "--no-figures", "--quiet"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    rows = ufm.load_results(out)
    random = rows[rows.source == "random"]
    assert len(random) == 3 and set(rows.source) == {"random", "planted", "origin"}
    assert rows.class_sizes.tolist() == [SIZES] * len(rows) and rows.n.isna().all()
    assert (rows.K == 3).all()
    # f* is the convex program's value (no closed form for CE with class sizes), computed once
    spec = ufm.UFMSpec(K=3, n=SIZES, d=3, loss="ce", lambda_W=LAM, lambda_H=LAM)
    f_convex = with_convex_reference(spec).f_convex
    assert (rows.f_star == f_convex).all() and 0 < f_convex < 1.2
    assert random.at_optimum.all() and (random["class"] == "global_min").all()
    assert rows.loc[rows.source == "origin", "class"].tolist() == ["strict_saddle"]
    assert "3 of the 3 valid ones with a closed form end at" in text
    assert "1 configurations have class sizes" in text
    assert "below the rank of their minimiser" in text
    assert (rows.loc[rows.source == "planted", "class"] == "strict_saddle").all()
    assert "3 global minima, 3 strict saddles" in text and "0 spurious or degenerate." in text
    assert "n=4,4,1" in text and "minima lpos" in text
    # the curvature after the zero modes, in the records and in the table
    lpos = random.lambda_pos_min.to_numpy()
    assert (lpos > 1e3 * random.zero_tol.to_numpy()).all()
    assert f"{lpos.min():.2e}" in text
    assert main(argv) == 0  # the same command resumes the same folder: nothing recomputed
    again = capsys.readouterr().out
    assert "(all 6 starts were already in the folder)" in again
    assert len(ufm.load_results(out)) == len(rows)


def test_landscape_config_size_vectors():
    cfg = LandscapeConfig(n=[[6, 6, 2, 2], (4, 4, 1), (6, 6, 2, 2)], variants=("mse-none",))
    assert cfg.n == ((6, 6, 2, 2), (4, 4, 1)) and cfg.K == (4, 3)
    specs = cfg.specs()
    assert [s.class_sizes for s in specs] == [(6, 6, 2, 2), (6, 6, 2, 2), (4, 4, 1), (4, 4, 1)]
    assert all(s.d == s.K for s in specs)
    assert LandscapeConfig(n=(3, 3, 1), K=3).K == (3,)
    assert LandscapeConfig().K == (4,) and LandscapeConfig().n == 4  # the default is unchanged
    configs, invalid = cfg.sweep_spec().expand()
    assert not invalid and len(configs) == len(specs)
    # MSE without bias has a closed form: nothing attached, f* from the closed form
    assert all(c.spec.f_convex is None for c in configs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n=(10, 0)), "n: class sizes must be positive"),
        (dict(n=(10, 2.5)), "n: class sizes must be integers"),
        (dict(n=((10,),)), "n: a class-size vector needs at least 2 sizes"),
        (dict(n=(10, (2, 2))), "n: expected one class-size vector or several"),
        (dict(n=()), "n: expected an int or class sizes"),
        (dict(n=(4, 4, 1), K=(4,)), "K=.* does not match the class-size vectors"),
    ],
)
def test_landscape_config_bad_sizes(kwargs, match):
    with pytest.raises(ufm.SpecError, match=match) as err:
        LandscapeConfig(**kwargs)
    assert len(str(err.value).splitlines()) == 1


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--class-sizes", "10,x"], "--class-sizes '10,x': expected comma-separated integers"),
        (["--class-sizes", "10"], "--class-sizes '10': expected at least 2 class sizes"),
        (["--class-sizes", "4,4;10,0"], "--class-sizes '10,0': class sizes must be positive"),
        (["--class-sizes", "4,4,1", "--K", "3"], "do not combine it with --K or --n"),
        (["--class-sizes", "4,4,1", "--n", "3"], "do not combine it with --K or --n"),
    ],
)
def test_cli_bad_class_sizes(argv, match, capsys, tmp_path):
    assert main(["landscape", *argv, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and match in err, err
    assert not (tmp_path / "x").exists()


def test_cli_class_sizes_parsing():
    from ufm.systems.ufm.cli import class_sizes_arg

    assert class_sizes_arg(["10,10,2,2;10,10,5,5", "3, 1"]) == (
        (10, 10, 2, 2),
        (10, 10, 5, 5),
        (3, 1),
    )


SWEEP = """
name = "imb"
model = "ufm"
analyses = ["closed_form"]
[grid]
n = {n}
loss = "ce"
K = 3
d = 3
[seeds]
count = 2
init_scale = 0.1
[optimizer]
name = "gd"
learning_rate = 1.0
max_steps = 300
polish = "none"
"""


def test_sweep_list_valued_n(tmp_path):
    spec = ufm.load_sweep_spec(SWEEP.format(n="[[4, 4, 1], [3, 3, 1], 2]"))
    configs, invalid = spec.expand()
    assert [c.spec.class_sizes for c in configs] == [SIZES, (3, 3, 1), (2, 2, 2)]
    assert not invalid
    # the convex reference is attached once per configuration (no closed form for CE) and is not
    # hashed: the hash is that of the spec as written
    assert configs[0].spec.f_convex == with_convex_reference(configs[0].spec).f_convex
    assert configs[2].spec.f_convex is None  # balanced: the closed form
    assert configs[0].label == "n=[4, 4, 1]" and len({c.hash for c in configs}) == 3
    two = ufm.load_sweep_spec(SWEEP.format(n="[[4, 4, 1], 2]"))
    c, bal = two.expand()[0]
    assert c.hash == configs[0].hash and bal.hash == configs[2].hash
    summary = ufm.run_sweep(two, tmp_path / "s", progress=False)
    assert summary.seeds_run == 4
    # n is a list in one chunk file and an int in the other: n reads as an int (<NA> for the
    # imbalanced rows) and class_sizes as a tuple for every row
    rows = ufm.load_results(tmp_path / "s")
    assert sorted(set(rows.class_sizes)) == [(2, 2, 2), SIZES]
    imb = rows[rows.class_sizes.isin([SIZES])]
    assert (rows.n == 2).sum() == len(rows) - len(imb) and imb.n.isna().all()
    assert len(imb) == 2 and (imb.f_star == c.spec.f_convex).all()
    assert (rows.f_gap > -1e-12).all() and (rows.f_gap < 1e-2).all()  # unpolished, above f*


@pytest.mark.parametrize(
    "n, match",
    [
        ('[[4, "a", 1]]', "'grid.n': expected an integer or a non-empty list of them"),
        ("[[4, 1.5, 1]]", "'grid.n': expected an integer or a non-empty list of them"),
        ("[[]]", "'grid.n': expected an integer or a non-empty list of them"),
        ("[[[4, 4, 1]]]", "'grid.n': expected an integer or a non-empty list of them"),
    ],
)
def test_sweep_malformed_n(n, match):
    with pytest.raises(ufm.SpecError, match=match) as err:
        ufm.load_sweep_spec(SWEEP.format(n=n))
    assert len(str(err.value).splitlines()) == 1


def test_sweep_invalid_sizes_are_named():
    configs, invalid = ufm.load_sweep_spec(SWEEP.format(n="[[4, 0, 1], [4, 4]]")).expand()
    assert not configs and len(invalid) == 2
    assert "positive integer class sizes" in invalid[0].error
    assert "tuple of K=3 class sizes" in invalid[1].error
