-- Store-demand features, run by DuckDB over the day's validated sales (the table `input`).
-- Seasonal: the day of week (cyclical) and a weekend flag, the same for every row of a day (the
-- YAML's quality.features compares them value by value). Rolling means of recent units: last 7 days,
-- the same weekday over 4 weeks, and the item's 7-day mean against its store's (a window). All float32, keyed by record_id;
-- `label` carries the day's units for training.
WITH sales AS (
    SELECT *,
           (units_lag_1 + units_lag_2 + units_lag_3 + units_lag_4 + units_lag_5 + units_lag_6 + units_lag_7) / 7.0
               AS mean_7,
           (units_lag_7 + units_lag_14 + units_lag_21 + units_lag_28) / 4.0 AS same_weekday_mean_4w,
           -- ISO weekday 1..7 from the epoch day (1970-01-01 was a Thursday): no session time zone involved
           ((CAST(epoch(sale_date) AS BIGINT) // 86400 + 3) % 7) + 1 AS iso_weekday
    FROM input
)
SELECT
    record_id,
    CAST(sin(2 * pi() * iso_weekday / 7) AS FLOAT) AS dow_sin,
    CAST(cos(2 * pi() * iso_weekday / 7) AS FLOAT) AS dow_cos,
    CAST(iso_weekday >= 6 AS FLOAT) AS is_weekend,
    CAST(ln(1 + units_lag_1) AS FLOAT) AS log_units_lag_1,
    CAST(ln(1 + mean_7) AS FLOAT) AS log_mean_7,
    CAST(ln(1 + same_weekday_mean_4w) AS FLOAT) AS log_same_weekday_mean_4w,
    CAST(ln((1 + mean_7) / (1 + avg(mean_7) OVER (PARTITION BY store_id))) AS FLOAT) AS log_mean_7_vs_store,
    CAST(ln(price) AS FLOAT) AS log_price,
    CAST(on_promotion AS FLOAT) AS on_promotion,
    CAST(units AS FLOAT) AS label
FROM sales
ORDER BY record_id
