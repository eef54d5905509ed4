-- Card-fraud features, run by DuckDB over the day's validated input (the table `input`).
-- Per-customer aggregates of the day, cyclical hour encodings, risk flags and one-hot merchant
-- categories, all float32, keyed by record_id. No label: labels arrive later as their own entity
-- (fraud_labels) and training joins them.
WITH per_customer AS (
    SELECT customer_id,
           median(amount) AS median_amount,
           count(*) AS txn_count,
           count(DISTINCT merchant_country) AS country_count
    FROM input
    GROUP BY customer_id
)
SELECT
    t.record_id,
    CAST(ln(1 + t.amount) AS FLOAT) AS log_amount,
    CAST(ln((t.amount + 1) / (c.median_amount + 1)) AS FLOAT) AS amount_vs_customer_median,
    CAST(ln(c.txn_count) AS FLOAT) AS customer_txn_count,
    CAST(c.country_count AS FLOAT) AS customer_country_count,
    CAST(sin(2 * pi() * hour(t.event_time) / 24) AS FLOAT) AS hour_sin,
    CAST(cos(2 * pi() * hour(t.event_time) / 24) AS FLOAT) AS hour_cos,
    CAST(hour(t.event_time) < 6 AS FLOAT) AS is_night,
    CAST(t.merchant_country <> t.card_country AS FLOAT) AS is_foreign,
    CAST(NOT t.card_present AS FLOAT) AS card_not_present,
    CAST(t.merchant_category = 'grocery' AS FLOAT) AS category_grocery,
    CAST(t.merchant_category = 'restaurants' AS FLOAT) AS category_restaurants,
    CAST(t.merchant_category = 'fuel' AS FLOAT) AS category_fuel,
    CAST(t.merchant_category = 'pharmacy' AS FLOAT) AS category_pharmacy,
    CAST(t.merchant_category = 'apparel' AS FLOAT) AS category_apparel,
    CAST(t.merchant_category = 'electronics' AS FLOAT) AS category_electronics,
    CAST(t.merchant_category = 'travel' AS FLOAT) AS category_travel,
    CAST(t.merchant_category = 'entertainment' AS FLOAT) AS category_entertainment,
    CAST(t.merchant_category = 'online_services' AS FLOAT) AS category_online_services,
    CAST(t.merchant_category = 'home_improvement' AS FLOAT) AS category_home_improvement,
    CAST(t.merchant_category = 'jewelry' AS FLOAT) AS category_jewelry,
    CAST(t.merchant_category = 'gift_cards' AS FLOAT) AS category_gift_cards
FROM input AS t
JOIN per_customer AS c USING (customer_id)
ORDER BY t.record_id
