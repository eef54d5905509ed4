-- Features of the {{name}} pipeline, run by DuckDB over the day's validated input (the table `input`).
-- Select the row key first, then one column per feature; cast features to FLOAT (float32), as the
-- features schema (schemas.py:FeaturesSchema) and the model's feature list expect.
SELECT
    record_id,
    CAST(ln(1 + amount) AS FLOAT) AS log_amount,
    CAST(quantity AS FLOAT) AS quantity,
    CAST(hour(event_time) AS FLOAT) AS hour_of_day,
    CAST(label AS TINYINT) AS label        -- the training target; not a model feature
FROM input
ORDER BY record_id
