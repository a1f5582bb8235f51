"""The README's Python example runs (with fewer seeds) and its two fresh-machine commands stay in
sync
with .ci/run."""

import pathlib
import re

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_example_runs():
    code = re.findall(r"```python\n(.*?)```", README, re.S)[0]
    assert "num_seeds=1000" in code
    ns = {}
    exec(code.replace("num_seeds=1000", "num_seeds=8"), ns)
    assert ns["res"].converged.all()
    np.testing.assert_allclose(
        np.asarray(ns["pol"].loss), ns["ufm"].optimal_value(ns["spec"]), rtol=1e-10
    )
    assert float(np.max(np.asarray(ns["cert"].gap))) < 1e-8
    assert set(ns["rows"]["class"]) == {"global_min"}
    # zero modes at the CE free-bias minimum: z(4, 3) rotations + the shift b -> b + c 1
    assert (ns["rows"]["n_zero"] == 6 + 1).all()


def test_ci_runs_the_readme_test_command():
    blocks = re.findall(r"```bash\n(.*?)```", README, re.S)
    assert len(blocks) >= 2
    install_run, test_cmd = blocks[0].strip(), blocks[1].strip()
    assert install_run.endswith("ufm landscape")
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_cmd in ci


def test_the_first_command_needs_only_the_core_dependencies():
    """``pip install -e . && ufm landscape`` installs the core dependencies only: importing ufm
    and its command line must not need a package that only an extra installs (equinox once did,
    through the feature-map system; the test environment has every extra, so block them)."""
    import subprocess
    import sys

    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    name = lambda req: re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0].strip().lower()  # noqa: E731
    core = {name(r) for r in meta["dependencies"]}
    extra = {name(r) for reqs in meta["optional-dependencies"].values() for r in reqs} - core
    modules = {"scikit-learn": "sklearn"}
    blocked = sorted(modules.get(p, p.replace("-", "_")) for p in extra)
    code = (
        "import sys\n"
        f"for m in {blocked!r}: sys.modules[m] = None\n"
        "import ufm, ufm.cli.main\n"
        "ufm.cli.main.build_parser()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "equinox" in core and "sklearn" in blocked
