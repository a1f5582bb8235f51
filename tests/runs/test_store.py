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


def _sized(h, n, K=3, seeds=(0, 1)):
    """A chunk of one UFM-like configuration: ``n`` an int (balanced) or a list of class sizes,
    stored as a scalar or a list column the way a spec's fields are written."""
    m = len(seeds)
    col = pa.array([list(n)] * m) if isinstance(n, (list, tuple)) else pa.array([n] * m)
    return _chunk(h, list(seeds), n=col, K=np.full(m, K, np.int64))


def test_mixed_class_sizes_read_as_int_n_and_class_sizes(tmp_path):
    """A folder mixing balanced (int n) and imbalanced (list n) configurations: n is an int
    column with <NA> for the imbalanced rows, class_sizes a tuple for every row; the balanced rows
    read the same with or without the imbalanced ones; a balanced-only folder is as stored."""
    mixed, alone = ResultStore(tmp_path / "mixed"), ResultStore(tmp_path / "bal")
    for s in (mixed, alone):
        s.prepare()
        s.write_chunk(_sized("a", 2))
        s.write_chunk(_sized("c", 4, K=2))
    mixed.write_chunk(_sized("b", [4, 4, 1]))
    df = ufm.load_results(tmp_path / "mixed")
    assert str(df["n"].dtype) == "Int64"
    assert df["n"].isna().tolist() == [False, False, True, True, False, False]
    assert df["class_sizes"].tolist() == [(2, 2, 2)] * 2 + [(4, 4, 1)] * 2 + [(4, 4)] * 2
    assert list(df.columns).index("class_sizes") == list(df.columns).index("n") + 1
    # pandas filtering and grouping work on both columns
    assert df[df["n"] == 2]["config_hash"].tolist() == ["a", "a"]
    assert df[df["class_sizes"].isin([(4, 4, 1)])]["config_hash"].tolist() == ["b", "b"]
    assert df.groupby("class_sizes").size().to_dict() == {(2, 2, 2): 2, (4, 4): 2, (4, 4, 1): 2}
    # the balanced rows read the same as in a folder without imbalanced configurations
    bal = ufm.load_results(tmp_path / "bal")
    assert "class_sizes" not in bal and str(bal["n"].dtype) == "int64"
    assert df[df["n"].notna()]["n"].astype(int).tolist() == bal["n"].tolist()
    # arrow: int64 n with nulls, list<int64> class_sizes; a column subset still builds them
    t = ufm.runs.load_results_arrow(tmp_path / "mixed", columns=["class_sizes"])
    assert t.column_names == ["class_sizes"] and t.schema.field(0).type == pa.list_(pa.int64())
    assert t["class_sizes"].to_pylist()[2] == [4, 4, 1]
    n = ufm.runs.load_results_arrow(tmp_path / "mixed", columns=["n"])["n"]
    assert n.type == pa.int64() and n.to_pylist() == [2, 2, None, None, 4, 4]
    # a folder of imbalanced configurations only reads the same way (n null, class_sizes set)
    imb = ResultStore(tmp_path / "imb")
    imb.prepare()
    imb.write_chunk(_sized("b", [4, 4, 1]))
    one = ufm.load_results(tmp_path / "imb")
    assert one["n"].isna().all() and one["class_sizes"].tolist() == [(4, 4, 1)] * 2


def test_refuse_new_configs_is_the_stores_rule_up_front(tmp_path):
    """New configurations into a folder holding others are refused (one line naming the folder
    and --extend) unless extend; a rerun of some or all of the folder's own is a resume."""
    refuse = _store.refuse_new_configs
    refuse(tmp_path / "none", ["a"])  # no folder yet
    store = ResultStore(tmp_path / "f")
    store.prepare()
    refuse(store.folder, ["a", "c"])  # no manifest yet
    store.write_manifest({"configs": {"a": {}, "b": {}}})
    for ours in (["a"], ["b", "a"], []):
        refuse(store.folder, ours)
    with pytest.raises(ufm.runs.StoreError, match="--extend") as err:
        refuse(store.folder, ["a", "c"])
    assert str(store.folder) in str(err.value) and "\n" not in str(err.value)
    refuse(store.folder, ["a", "c"], extend=True)
