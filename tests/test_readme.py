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
