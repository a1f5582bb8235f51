"""The row schema is documented once and kept in sync: docs/results.md, the Parquet metadata."""

from helpers import ROOT

import ufm
from ufm.runs.schema import all_column_docs, schema_markdown


def test_results_doc_lists_every_documented_column():
    text = (ROOT / "docs" / "results.md").read_text()
    table = text[text.index("| column | meaning (unit) |") :].strip()
    assert table == schema_markdown(), (
        "docs/results.md is out of date: regenerate its table with "
        "ufm.runs.schema.schema_markdown()"
    )


def test_every_stored_column_is_documented(tmp_path):
    spec = ufm.load_sweep_spec(
        'analyses = ["closed_form", "metrics"]\n[grid]\nK = 2\nn = 1\nd = 2\n'
        "[seeds]\ncount = 2\n[optimizer]\nmax_steps = 50\n"
    )
    ufm.run_sweep(spec, tmp_path, devices=1, progress=False)
    stored = ufm.runs.store.column_docs(tmp_path)
    columns = ufm.load_results(tmp_path).columns
    fields = set(ufm.runs.sweep_spec.spec_fields(ufm.UFMSpec(K=2, n=1, d=2)))
    missing = [c for c in columns if c not in stored and c not in fields]
    assert not missing, missing
    assert all(stored[c] == all_column_docs()[c] for c in stored if c in all_column_docs())
