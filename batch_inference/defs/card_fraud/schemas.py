"""pandera models of the card-fraud hand-offs: landing input, features, predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from batch_inference.defs.card_fraud.vocabulary import COUNTRIES, FEATURE_COLUMNS, MERCHANT_CATEGORIES

_UTC = {"unit": "us", "tz": "UTC"}
# Strings are validated as Arrow-backed pandas strings: no Python objects, vectorised checks.
_ARROW_STR = {"storage": "pyarrow"}
Str = Series[pd.StringDtype]


class TransactionsSchema(pa.DataFrameModel):
    """A day of validated transactions (after quarantine)."""

    record_id: Str = pa.Field(dtype_kwargs=_ARROW_STR, unique=True, nullable=False, str_length={"min_value": 1})
    event_time: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs=_UTC, nullable=False)
    customer_id: Series[np.int64] = pa.Field(ge=0)
    merchant_category: Str = pa.Field(dtype_kwargs=_ARROW_STR, isin=MERCHANT_CATEGORIES)
    merchant_country: Str = pa.Field(dtype_kwargs=_ARROW_STR, isin=COUNTRIES)
    card_country: Str = pa.Field(dtype_kwargs=_ARROW_STR, isin=COUNTRIES)
    amount: Series[np.float64] = pa.Field(ge=0, le=1_000_000)
    card_present: Series[bool]

    class Config:
        name = "TransactionsSchema"
        strict = True


class FeaturesSchema(pa.DataFrameModel):
    """Model inputs: every feature a finite float32, keyed by a unique record_id."""

    record_id: Str = pa.Field(dtype_kwargs=_ARROW_STR, unique=True, nullable=False)
    feature: Series[np.float32] = pa.Field(alias="^(?!record_id$).+$", regex=True, nullable=False,
                                           ge=-1e6, le=1e6)

    class Config:
        name = "FeaturesSchema"
        strict = True

    @pa.dataframe_check(error="missing feature columns")
    @classmethod
    def has_all_features(cls, df: pd.DataFrame) -> bool:
        return set(FEATURE_COLUMNS) <= set(df.columns)


class PredictionsSchema(pa.DataFrameModel):
    """Scores with their provenance."""

    record_id: Str = pa.Field(dtype_kwargs=_ARROW_STR, unique=True, nullable=False)
    score: Series[np.float32] = pa.Field(ge=0, le=1, nullable=False)
    model_name: Str = pa.Field(dtype_kwargs=_ARROW_STR, nullable=False)
    model_version: Str = pa.Field(dtype_kwargs=_ARROW_STR, nullable=False, str_matches=r"^\d+$")
    scored_at: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs=_UTC, nullable=False)
    run_id: Str = pa.Field(dtype_kwargs=_ARROW_STR, nullable=False)

    class Config:
        name = "PredictionsSchema"
        strict = True
