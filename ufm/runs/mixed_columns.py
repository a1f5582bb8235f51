"""Columns whose type differs between the chunk files of one results folder, made consistent on
reading (:func:`ufm.runs.load_results`).

The UFM's ``n`` is an int for equal class sizes and the list of class sizes otherwise, so a folder
that mixes balanced and imbalanced configurations holds it both ways. :func:`split_class_sizes`
reads it as an int ``n`` (null for unequal sizes) plus a ``class_sizes`` list column for every
row; :func:`nested_as_json` turns any other column that is a list in some files and a scalar in
others into JSON strings; :func:`class_sizes_as_tuples` gives pandas hashable tuples.
"""

from __future__ import annotations

import json

import pyarrow as pa

__all__ = [
    "SIZE_COLUMN",
    "COUNT_COLUMN",
    "SIZES_COLUMN",
    "split_class_sizes",
    "nested_as_json",
    "class_sizes_as_tuples",
]

#: The class-size column: ``n`` is an int for equal class sizes (``K`` classes of ``n``) and the
#: list of sizes otherwise (the UFM's ``UFMSpec.n``); read as ``n`` (int or null) and
#: ``class_sizes`` (list of ``K`` ints) whenever a folder holds unequal sizes.
SIZE_COLUMN, COUNT_COLUMN, SIZES_COLUMN = "n", "K", "class_sizes"


def split_class_sizes(tables: list) -> list:
    """If the ``n`` column is a list in any chunk file (unequal class sizes), give every file an
    int ``n`` (null where the sizes are unequal) and a ``class_sizes`` list column (``K`` copies
    of ``n`` for equal sizes; null where a file has no ``n`` or ``K``), so that the loaded columns
    do not depend on which configurations share the folder."""
    nested = [
        t
        for t in tables
        if SIZE_COLUMN in t.column_names and pa.types.is_nested(t.schema.field(SIZE_COLUMN).type)
    ]
    if not nested:
        return tables
    out = []
    for t in tables:
        if SIZES_COLUMN in t.column_names or SIZE_COLUMN not in t.column_names:
            out.append(t)
            continue
        n = t.column(SIZE_COLUMN).to_pylist()
        if pa.types.is_nested(t.schema.field(SIZE_COLUMN).type):
            sizes = [None if v is None else [int(x) for x in v] for v in n]
        else:
            has_k = COUNT_COLUMN in t.column_names
            K = t.column(COUNT_COLUMN).to_pylist() if has_k else [None] * len(n)
            sizes = [None if v is None or k is None else [int(v)] * int(k) for v, k in zip(n, K)]
        equal = [None if s is None or len(set(s)) != 1 else s[0] for s in sizes]
        i = t.column_names.index(SIZE_COLUMN)
        t = t.set_column(i, SIZE_COLUMN, pa.array(equal, pa.int64()))
        t = t.add_column(i + 1, SIZES_COLUMN, pa.array(sizes, pa.list_(pa.int64())))
        out.append(t)
    return out


def nested_as_json(tables: list) -> list:
    """Columns other than ``n`` (:func:`split_class_sizes`) that are nested (lists) in some chunk
    files and scalars in others, as JSON strings (``"4"``, ``"[4, 4, 1]"``) in every file, so that
    the files concatenate."""
    kinds: dict = {}
    for t in tables:
        for f in t.schema:
            kinds.setdefault(f.name, set()).add(pa.types.is_nested(f.type))
    mixed = {k for k, v in kinds.items() if len(v) > 1}
    out = []
    for t in tables:
        for k in mixed & set(t.column_names):
            values = [None if v is None else json.dumps(v) for v in t.column(k).to_pylist()]
            t = t.set_column(t.column_names.index(k), k, pa.array(values, pa.string()))
        out.append(t)
    return out


def class_sizes_as_tuples(df):
    """A pandas frame with ``class_sizes`` as tuples of ints (hashable: ``groupby``, ``isin``,
    ``set``) and ``n`` as a nullable ``Int64`` column (``<NA>`` for unequal sizes); unchanged if
    it has no ``class_sizes`` column."""
    if SIZES_COLUMN in df.columns:
        sizes = df[SIZES_COLUMN]
        df[SIZES_COLUMN] = [None if v is None else tuple(int(x) for x in v) for v in sizes]
        if SIZE_COLUMN in df.columns:
            df[SIZE_COLUMN] = df[SIZE_COLUMN].astype("Int64")
    return df
