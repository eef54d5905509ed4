"""Completeness: every landing row is either scored or quarantined, and none twice; and the volume
gate: a day with nothing scored, or too large a share quarantined, is blocked (runbook F2)."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow as pa

from batch_inference.bounded_duckdb import bounded_connection, quoted
from batch_inference.ingest import OUT_OF_DAY
from batch_inference.validation import validate_identifier


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


def _ids_view(files: list[tuple[str, str]]) -> str:
    """A SELECT of one `record_id` text column over Parquet files given as (path, key column)."""
    parts = [f'SELECT CAST("{validate_identifier(column, "key column")}" AS VARCHAR) AS record_id '  # noqa: S608
             f'FROM read_parquet({quoted(path)})' for path, column in files]
    return " UNION ALL ".join(parts) or "SELECT CAST(NULL AS VARCHAR) AS record_id WHERE false"


def check_completeness_files(landing: list[tuple[str, str]], scored: list[tuple[str, str]],
                             quarantined: list[tuple[str, str]]) -> CompletenessReport:
    """`check_completeness` over the key columns of Parquet files on local disk, given as (path, column):
    DuckDB reads them itself, in bounded memory, so nothing grows with the day."""
    with bounded_connection() as con:
        # DDL binds no parameters: the view names are these literals, the paths quoted, the columns checked.
        for name, files in (("landing", landing), ("scored", scored), ("quarantined", quarantined)):
            con.execute(f"CREATE VIEW {name} AS {_ids_view(files)}")
        row = con.sql(_SQL).fetchall()[0]
    return CompletenessReport(*(int(v) for v in row))


# Above this share of quarantined landing rows a day is blocked (per pipeline: `quality.max_quarantine_share`).
# A few bad rows a day are normal noise and stay in quarantine; 10 % is no longer noise but a systematic
# upstream fault (another day's file, an encoding change, a column filled with nulls), and publishing the
# rest as the complete day would hide it. It also leaves room for the binomial noise of small days: a
# 3 % defect rate on a 120-row day exceeds 5 % one day in ten, but 10 % almost never.
DEFAULT_MAX_QUARANTINE_SHARE = 0.10
VOLUME_RUNBOOK = "docs/runbooks/F2.md"


@dataclass
class VolumeReport:
    """Whether enough of a day was scored: the volume gate beside the row accounting."""

    landing_rows: int
    scored_rows: int
    quarantined_rows: int
    out_of_day_rows: int
    max_quarantine_share: float

    @property
    def quarantine_share(self) -> float:
        return self.quarantined_rows / self.landing_rows if self.landing_rows else 0.0

    @property
    def passed(self) -> bool:
        """An empty file is a quiet day; a non-empty one needs scored rows and few enough quarantined."""
        if self.landing_rows == 0:
            return True
        return self.scored_rows > 0 and self.quarantine_share <= self.max_quarantine_share

    @property
    def message(self) -> str:
        share = (f"{self.quarantined_rows:,} of {self.landing_rows:,} landing rows quarantined "
                 f"({self.quarantine_share:.1%}, limit {self.max_quarantine_share:.1%}); "
                 f"{self.out_of_day_rows:,} of them outside the file's day")
        if self.passed:
            return share
        why = "nothing scored from a non-empty file" if self.scored_rows == 0 else "too many rows quarantined"
        return f"{why}: {share}. Runbook: {VOLUME_RUNBOOK}"


def count_out_of_day(reasons: pa.ChunkedArray | pa.Array | list) -> int:
    """How many quarantine reasons say the row's event time is outside the file's day."""
    values = reasons.to_pylist() if hasattr(reasons, "to_pylist") else reasons
    return sum(1 for r in values if r and OUT_OF_DAY in r)


def check_volume(report: CompletenessReport, out_of_day_rows: int,
                 max_quarantine_share: float = DEFAULT_MAX_QUARANTINE_SHARE) -> VolumeReport:
    """The volume gate for a day whose rows were accounted by `check_completeness`."""
    if not 0.0 <= max_quarantine_share <= 1.0:
        raise ValueError(f"max_quarantine_share must lie in [0, 1], got {max_quarantine_share}")
    return VolumeReport(report.landing_rows, report.scored_rows, report.quarantined_rows, out_of_day_rows,
                        max_quarantine_share)
