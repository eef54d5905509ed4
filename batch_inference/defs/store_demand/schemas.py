"""pandera models of the store-demand hand-offs: the validated sales input, features, predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from batch_inference.defs.store_demand.sales import LAGS

_UTC = {"unit": "us", "tz": "UTC"}
_ARROW_STR = {"storage": "pyarrow"}
Str = Series[pd.StringDtype]
FEATURE_COLUMNS = ("dow_sin", "dow_cos", "is_weekend", "log_units_lag_1", "log_mean_7", "log_same_weekday_mean_4w",
                   "log_mean_7_vs_store", "log_price", "on_promotion")


class SalesSchema(pa.DataFrameModel):
    """A day of validated store x item sales (after quarantine): the row rules of the upstream feed."""

    record_id: Str = pa.Field(dtype_kwargs=_ARROW_STR, unique=True, nullable=False, str_length={"min_value": 1})
    store_id: Series[np.int32] = pa.Field(ge=0)
    item_id: Series[np.int32] = pa.Field(ge=0)
    sale_date: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs=_UTC, nullable=False)
    price: Series[np.float64] = pa.Field(gt=0, le=100_000)
    on_promotion: Series[bool]
    units_lag: Series[np.float64] = pa.Field(alias=r"^units_lag_\d+$", regex=True, ge=0, le=1_000_000,
                                             nullable=False)
    units: Series[np.float64] = pa.Field(ge=0, le=1_000_000, nullable=False)

    class Config:
        name = "SalesSchema"
        strict = True

    @pa.dataframe_check(error="missing units_lag columns")
    @classmethod
    def has_all_lags(cls, df: pd.DataFrame) -> bool:
        return {f"units_lag_{lag}" for lag in LAGS} <= set(df.columns)


class FeaturesSchema(pa.DataFrameModel):
    """Model inputs: every feature a finite float32, keyed by a unique record_id; `label` the day's units."""

    record_id: Str = pa.Field(dtype_kwargs=_ARROW_STR, unique=True, nullable=False)
    feature: Series[np.float32] = pa.Field(alias="^(?!record_id$|label$).+$", regex=True, nullable=False,
                                           ge=-1e6, le=1e6)
    label: Series[np.float32] = pa.Field(ge=0, nullable=True)

    class Config:
        name = "StoreDemandFeaturesSchema"
        strict = True

    @pa.dataframe_check(error="missing feature columns")
    @classmethod
    def has_all_features(cls, df: pd.DataFrame) -> bool:
        return set(FEATURE_COLUMNS) <= set(df.columns)


class PredictionsSchema(pa.DataFrameModel):
    """Forecast units (never negative) with their provenance."""

    record_id: Str = pa.Field(dtype_kwargs=_ARROW_STR, unique=True, nullable=False)
    prediction: Series[np.float32] = pa.Field(ge=0, le=1_000_000, nullable=False)
    model_name: Str = pa.Field(dtype_kwargs=_ARROW_STR, nullable=False)
    model_version: Str = pa.Field(dtype_kwargs=_ARROW_STR, nullable=False, str_matches=r"^\d+$")
    scored_at: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs=_UTC, nullable=False)
    run_id: Str = pa.Field(dtype_kwargs=_ARROW_STR, nullable=False)

    class Config:
        name = "StoreDemandPredictionsSchema"
        strict = True
