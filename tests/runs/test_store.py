"""Result store: atomic chunk files, temp-file hygiene, resume keys, loaders, unwritable folders."""

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import ufm
from ufm.runs import store as _store
from ufm.runs.store import ResultStore


def _chunk(h, seeds, **extra):
    seeds = np.asarray(seeds, dtype=np.int64)
    cols = {
        "config_hash": pa.array([h] * seeds.size),
        "seed": pa.array(seeds),
        "f": pa.array(seeds * 0.5),
    }
    cols.update({k: pa.array(v) for k, v in extra.items()})
    return pa.table(cols)


def test_roundtrip_done_seeds_and_schema_union(tmp_path):
    store = ResultStore(tmp_path / "sweep")
    store.prepare()
    store.write_chunk(_chunk("b", [2, 3], nc1=np.array([0.1, 0.2])))
    store.write_chunk(_chunk("a", [1, 0]))
    store.write_chunk(_chunk("b", [0, 1], nc1=np.array([0.3, 0.4])))
    assert store.done_seeds() == {"a": {0, 1}, "b": {0, 1, 2, 3}}
    t = ufm.runs.load_results_arrow(tmp_path / "sweep")
    assert t.num_rows == 6
    assert list(zip(t["config_hash"].to_pylist(), t["seed"].to_pylist())) == [
        ("a", 0),
        ("a", 1),
        ("b", 0),
        ("b", 1),
        ("b", 2),
        ("b", 3),
    ]
    np.testing.assert_array_equal(t["f"].to_numpy(), 0.5 * np.array([0, 1, 0, 1, 2, 3]))
    assert t["nc1"].to_pylist() == [None, None, 0.3, 0.4, 0.1, 0.2]  # missing column -> nulls
    df = ufm.load_results(tmp_path / "sweep")
    assert df.shape == (6, 4) and df["seed"].tolist() == t["seed"].to_pylist()
    assert ufm.runs.load_results_arrow(tmp_path / "sweep", columns=["seed"]).column_names == [
        "seed"
    ]


def test_temp_files_are_ignored_and_cleaned(tmp_path):
    store = ResultStore(tmp_path, process_index=0, process_count=2)
    store.prepare()
    peer_store = ResultStore(tmp_path, process_index=1, process_count=2)
    peer_store.prepare()  # a live peer: holds the lock of writer p1
    store.write_chunk(_chunk("a", [0]))
    # A chunk killed mid-write (own writer), one of a live peer, one of a writer that is gone (its
    # lock is free), and a truncated manifest under a temp name.
    own = store.data / ".tmp-p0-123-a.parquet"
    peer = store.data / ".tmp-p1-456-b.parquet"
    gone = store.data / ".tmp-p3-789-c.parquet"
    manifest = tmp_path / ".tmp-p0-123-manifest.json.part"
    for p in (own, peer, gone, manifest):
        p.write_bytes(b"PAR1 truncated")
    assert ufm.runs.load_results_arrow(tmp_path).num_rows == 1  # temp files never read
    assert store.clean_temp() == 3
    assert not own.exists() and not gone.exists() and not manifest.exists() and peer.exists()
    peer_store.release()  # the peer is gone: its leftovers are now stale
    assert store.clean_temp() == 1 and not peer.exists()


def test_second_writer_is_refused_naming_the_holder(tmp_path):
    first = ResultStore(tmp_path)
    first.prepare()
    with pytest.raises(ufm.runs.StoreError, match=r"in use by another writer \(pid \d+ on "):
        ResultStore(tmp_path).prepare()
    first.release()
    ResultStore(tmp_path).prepare()  # free again


def test_duplicate_rows_are_detected(tmp_path):
    store = ResultStore(tmp_path)
    store.prepare()
    store.write_chunk(_chunk("a", [0, 1]))
    store.write_chunk(_chunk("a", [1, 2]))  # (a, 1) twice, as two lock-less writers would
    with pytest.warns(ufm.runs.DuplicateRowsWarning, match="1 duplicate"):
        t = ufm.runs.load_results_arrow(tmp_path)
    assert t["seed"].to_pylist() == [0, 1, 2]
    assert ufm.runs.load_results_arrow(tmp_path, duplicates="keep").num_rows == 4
    with pytest.raises(ufm.runs.StoreError, match="duplicate"):
        ufm.runs.load_results_arrow(tmp_path, duplicates="raise")


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    store = ResultStore(tmp_path)
    store.prepare()

    def broken(table, where, **kw):
        where.write(b"PAR1 half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_store.pq, "write_table", broken)
    with pytest.raises(OSError, match="No space"):
        store.write_chunk(_chunk("a", [0, 1]))
    assert list(store.data.iterdir()) == []


def test_chunk_file_is_complete_parquet(tmp_path):
    store = ResultStore(tmp_path, process_index=3, process_count=4)
    store.prepare()
    path = store.write_chunk(_chunk("abc", [5, 6]))
    assert path.name.startswith("abc-p3-s0000000005-") and path.suffix == ".parquet"
    assert pq.read_table(path).equals(_chunk("abc", [5, 6]))
    with pytest.raises(ValueError, match="seed"):
        store.write_chunk(pa.table({"config_hash": ["x"]}))


def test_manifest_roundtrip(tmp_path):
    store = ResultStore(tmp_path)
    store.prepare()
    assert store.read_manifest() is None
    store.write_manifest({"configs": {"a": {"num_seeds": 3}}})
    assert store.read_manifest() == {"configs": {"a": {"num_seeds": 3}}}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []


def test_unwritable_folder_named(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(ufm.runs.StoreError, match="a_file.*not writable"):
        ResultStore(blocker / "sweep").prepare()


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores permission bits"
)
def test_read_only_folder_named(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(ufm.runs.StoreError, match="not writable"):
            ResultStore(ro).prepare()
    finally:
        ro.chmod(0o755)


def test_loader_errors(tmp_path):
    with pytest.raises(ufm.runs.StoreError, match="does not exist"):
        ufm.runs.load_results_arrow(tmp_path / "missing")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.parquet").write_bytes(b"garbage")
    with pytest.raises(ufm.runs.StoreError, match="x.parquet"):
        ufm.runs.load_results_arrow(tmp_path)
