"""Execute every jupytext notebook in fast mode (UFM_FAST=1) as CI does.

The notebooks are py:percent sources: running one as a script executes every cell in order. Each
must import only the public API (``import ufm``, never ``ufm._...``) and read the fast switch.
"""

import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py"))


def test_there_are_notebooks():
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_jupytext_percent_and_public_only(path):
    jupytext = pytest.importorskip("jupytext")
    text = path.read_text()
    nb = jupytext.reads(text, fmt="py:percent")
    assert len(nb.cells) >= 3
    assert "UFM_FAST" in text, "notebooks must read the fast-mode switch"
    assert not re.search(r"\bufm\._|from ufm\._|import ufm\._", text), "use the public API only"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_fast_mode(path, tmp_path):
    env = dict(os.environ, UFM_FAST="1", MPLBACKEND="Agg", UFM_PROGRESS="0")
    proc = subprocess.run(
        [sys.executable, str(path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
