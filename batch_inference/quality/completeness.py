"""Completeness: every landing row is either scored or quarantined, and none twice."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc


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


def check_completeness(landing_ids: pa.ChunkedArray | pa.Array, scored_ids: pa.ChunkedArray | pa.Array,
                       quarantined_ids: pa.ChunkedArray | pa.Array) -> CompletenessReport:
    """Compare the ids that landed with the ids scored and the ids quarantined."""
    landing = pc.drop_null(landing_ids)
    scored_unique = pc.unique(scored_ids)
    accounted = pc.unique(pa.chunked_array([pa.chunked_array([scored_ids]).combine_chunks(),
                                            pc.drop_null(pa.chunked_array([quarantined_ids])).combine_chunks()]))
    return CompletenessReport(
        landing_rows=len(landing_ids),
        scored_rows=len(scored_ids),
        quarantined_rows=len(quarantined_ids),
        duplicate_scored_ids=len(scored_ids) - len(scored_unique),
        unexpected_ids=int(pc.sum(pc.invert(pc.is_in(scored_unique, landing))).as_py() or 0),
        unaccounted_ids=int(pc.sum(pc.invert(pc.is_in(pc.unique(landing), accounted))).as_py() or 0),
    )
