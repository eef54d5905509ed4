"""pandera models of the support-tickets hand-offs: landing input, features, embeddings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from batch_inference.defs.support_tickets.generator import CATEGORIES, CHANNELS

_UTC = {"unit": "us", "tz": "UTC"}
# Strings are validated as Arrow-backed pandas strings: no Python objects, vectorised checks.
_ARROW_STR = {"storage": "pyarrow"}
Str = Series[pd.StringDtype]
EMBEDDING_DIMENSION = 384
# What features.sql computes, in order (a test keeps the two in step).
FEATURE_COLUMNS = ("record_id", "text", "channel", "category", "text_length", "word_count",
                   "has_non_ascii", "hour_of_day")


class TicketsSchema(pa.DataFrameModel):
    """A day of landed tickets (after quarantine): a null text is a row problem, not a file one."""

    ticket_id: Str = pa.Field(dtype_kwargs=_ARROW_STR, unique=True, nullable=False, str_length={"min_value": 1})
    created_at: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs=_UTC, nullable=False)
    channel: Str = pa.Field(dtype_kwargs=_ARROW_STR, isin=CHANNELS, nullable=False)
    category: Str = pa.Field(dtype_kwargs=_ARROW_STR, isin=CATEGORIES, nullable=False)
    text: Str = pa.Field(dtype_kwargs=_ARROW_STR, nullable=False)  # "" is a valid (empty) ticket

    class Config:
        name = "TicketsSchema"
        strict = True


class TicketFeaturesSchema(pa.DataFrameModel):
    """Model input (the text) and descriptive features, keyed by a unique record_id."""

    record_id: Str = pa.Field(dtype_kwargs=_ARROW_STR, unique=True, nullable=False)
    text: Str = pa.Field(dtype_kwargs=_ARROW_STR, nullable=False)
    channel: Str = pa.Field(dtype_kwargs=_ARROW_STR, isin=CHANNELS, nullable=False)
    category: Str = pa.Field(dtype_kwargs=_ARROW_STR, isin=CATEGORIES, nullable=False)
    text_length: Series[np.float32] = pa.Field(ge=0, nullable=False)
    word_count: Series[np.float32] = pa.Field(ge=0, nullable=False)
    has_non_ascii: Series[np.float32] = pa.Field(isin=[0.0, 1.0], nullable=False)
    hour_of_day: Series[np.float32] = pa.Field(ge=0, le=23, nullable=False)

    class Config:
        name = "TicketFeaturesSchema"
        strict = True


class EmbeddingsSchema(pa.DataFrameModel):
    """Embeddings with their provenance: one L2-normalised 384-float vector per record_id."""

    record_id: Str = pa.Field(dtype_kwargs=_ARROW_STR, unique=True, nullable=False)
    embedding: Series[object] = pa.Field(nullable=False)
    model_name: Str = pa.Field(dtype_kwargs=_ARROW_STR, nullable=False)
    model_version: Str = pa.Field(dtype_kwargs=_ARROW_STR, nullable=False, str_matches=r"^\d+$")
    scored_at: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs=_UTC, nullable=False)
    run_id: Str = pa.Field(dtype_kwargs=_ARROW_STR, nullable=False)

    class Config:
        name = "EmbeddingsSchema"
        strict = True

    @pa.check("embedding", element_wise=False, error=f"{EMBEDDING_DIMENSION} finite floats of unit norm")
    @classmethod
    def unit_vectors(cls, series: pd.Series) -> pd.Series:
        """Each value: 384 finite floats with L2 norm 1 (to 1e-3); vectorised over the column."""
        ok = series.map(lambda v: v is not None and len(v) == EMBEDDING_DIMENSION).to_numpy(dtype=bool)
        result = np.zeros(len(series), dtype=bool)
        if ok.any():
            matrix = np.stack(series.to_numpy()[ok]).astype(np.float64)
            finite = np.isfinite(matrix).all(axis=1)
            norms = np.linalg.norm(np.where(np.isfinite(matrix), matrix, 0.0), axis=1)
            result[ok] = finite & (np.abs(norms - 1.0) <= 1e-3)
        return pd.Series(result, index=series.index)
