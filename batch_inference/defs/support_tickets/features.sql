-- Support-ticket features, run by DuckDB over the day's validated input (the table `input`).
-- The text goes to the model as it is; the other columns describe it for drift checks and
-- for consumers (length in characters, words, whether it holds non-ASCII characters).
SELECT
    t.ticket_id AS record_id,
    t.text,
    t.channel,
    t.category,
    CAST(length(coalesce(t.text, '')) AS FLOAT) AS text_length,
    CAST(CASE WHEN trim(coalesce(t.text, '')) = '' THEN 0
              ELSE len(regexp_split_to_array(trim(t.text), '\s+')) END AS FLOAT) AS word_count,
    CAST(regexp_matches(coalesce(t.text, ''), '[^\x00-\x7F]') AS FLOAT) AS has_non_ascii,
    CAST(hour(timezone('UTC', t.created_at)) AS FLOAT) AS hour_of_day
FROM input AS t
ORDER BY t.ticket_id
