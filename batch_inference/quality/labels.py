"""Labels that arrive late: the latest known label of each row. No Dagster import, no example names."""

from __future__ import annotations

import pyarrow as pa


def latest_labels(labels: pa.Table, key: str = "record_id", label: str = "label",
                  labelled_at: str = "labelled_at") -> pa.Table:
    """(`key`, `label`): each row's label as last known (a later correction wins).

    Two different labels for one row known at the same instant is an error naming the row.
    """
    for column in (key, label, labelled_at):
        if column not in labels.column_names:
            raise ValueError(f"labels have no column {column!r}: {labels.column_names}")
    distinct = labels.select([key, labelled_at, label]).group_by([key, labelled_at, label]).aggregate([])
    newest = labels.group_by(key).aggregate([(labelled_at, "max")]).rename_columns([key, labelled_at])
    latest = newest.join(distinct, [key, labelled_at])
    if latest.num_rows != newest.num_rows:
        keys = latest.column(key).to_pylist()
        twice = next(k for k in keys if keys.count(k) > 1)
        raise ValueError(f"labels: {key} {twice!r} has two different labels known at the same time")
    return latest.select([key, label])
