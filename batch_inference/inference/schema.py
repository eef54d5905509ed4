"""The scoring output's columns (no torch import: the load-time checks read them too)."""

from __future__ import annotations

import pyarrow as pa

from batch_inference.plugins.protocols import OutputHead

PROVENANCE_FIELDS = [
    pa.field("model_name", pa.string()),
    pa.field("model_version", pa.string()),
    pa.field("scored_at", pa.timestamp("us", tz="UTC")),
    pa.field("run_id", pa.string()),
]


def output_schema(head: OutputHead, key: str = "record_id") -> pa.Schema:
    """The row key column `key`, the head's columns, then the provenance columns."""
    return pa.schema([pa.field(key, pa.string()), *head.fields(), *PROVENANCE_FIELDS])
