"""Completeness: every landing row is either scored or quarantined, and none twice."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow as pa


@dataclass
class CompletenessReport:
    landing_rows: int
    scored_rows: int
    quarantined_rows: int
    duplicate_scored_ids: int
    unexpected_ids: int
    unaccounted_ids: int

    @property
    def passed(self) -> bool:
        return (self.landing_rows == self.scored_rows + self.quarantined_rows
                and self.duplicate_scored_ids == 0 and self.unexpected_ids == 0
                and self.unaccounted_ids == 0)


_SQL = """
WITH scored_distinct AS (SELECT DISTINCT record_id FROM scored),
     accounted AS (SELECT record_id FROM scored UNION SELECT record_id FROM quarantined
                   WHERE record_id IS NOT NULL)
SELECT
    (SELECT count(*) FROM landing),
    (SELECT count(*) FROM scored),
    (SELECT count(*) FROM quarantined),
    (SELECT count(*) FROM scored) - (SELECT count(*) FROM scored_distinct),
    (SELECT count(*) FROM scored_distinct ANTI JOIN landing USING (record_id)),
    (SELECT count(*) FROM (SELECT DISTINCT record_id FROM landing WHERE record_id IS NOT NULL)
        ANTI JOIN accounted USING (record_id))
"""


def check_completeness(landing_ids: pa.ChunkedArray | pa.Array, scored_ids: pa.ChunkedArray | pa.Array,
                       quarantined_ids: pa.ChunkedArray | pa.Array) -> CompletenessReport:
    """Compare the ids that landed with the ids scored and the ids quarantined (hash joins in DuckDB)."""
    con = duckdb.connect()
    try:
        for name, ids in (("landing", landing_ids), ("scored", scored_ids), ("quarantined", quarantined_ids)):
            con.register(name, pa.table({"record_id": ids}))
        row = con.sql(_SQL).fetchall()[0]
    finally:
        con.close()
    return CompletenessReport(*(int(v) for v in row))
