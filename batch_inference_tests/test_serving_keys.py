"""A key is served once: the serving view keeps the latest day's row of each key (real Parquet, DuckDB)."""

import re
from pathlib import Path

import numpy as np
import pyarrow as pa

from batch_inference import serving
from batch_inference.lake import Lake

README = Path(__file__).resolve().parents[1] / "README.md"
DIM = 384


def _day(ids: list[str], seed: int) -> pa.Table:
    vectors = np.random.default_rng(seed).normal(size=(len(ids), DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    flat = pa.array(vectors.ravel(), pa.float32())
    return pa.table({"record_id": pa.array(ids, pa.string()),
                     "embedding": pa.FixedSizeListArray.from_arrays(flat, DIM),
                     "model_version": pa.array(["1"] * len(ids))})


def _readme_similarity_query(record_id: str) -> str:
    """The nearest-neighbour query of the README, for `record_id`."""
    sql = re.search(r"```sql\n(WITH q AS .*?serving_embeddings.*?)```", README.read_text(), re.S).group(1)
    return re.sub(r"record_id = '[^']+'", f"record_id = '{record_id}'", sql)


def test_a_key_on_two_days_is_served_once_from_the_latest_day(tmp_path):
    root = tmp_path / "lake"
    lake = Lake(f"{root}/support_tickets")
    lake.write("serving_embeddings", "2026-03-02", _day(["tk-a", "tk-b", "tk-c"], 1))
    lake.write("serving_embeddings", "2026-03-03", _day(["tk-b", "tk-d"], 2))  # tk-b re-delivered a day later
    lake.write("embeddings", "2026-03-02", _day(["tk-a", "tk-b", "tk-c"], 1))
    lake.write("embeddings", "2026-03-03", _day(["tk-b", "tk-d"], 2))
    con = serving.connect(str(root))
    try:
        served = dict(con.execute("SELECT record_id, CAST(date AS VARCHAR) FROM support_tickets.serving_embeddings")
                      .fetchall())
        assert served == {"tk-a": "2026-03-02", "tk-b": "2026-03-03", "tk-c": "2026-03-02", "tk-d": "2026-03-03"}
        assert con.execute("SELECT count(*) FROM support_tickets.serving_embeddings").fetchone()[0] == 4
        # The per-day assets are shown as they are: both days' rows of tk-b.
        assert con.execute("SELECT count(*) FROM support_tickets.embeddings").fetchone()[0] == 5
        matches = [r[0] for r in con.execute(_readme_similarity_query("tk-b")).fetchall()]
        assert sorted(matches) == ["tk-a", "tk-b", "tk-c", "tk-d"] and matches[0] == "tk-b"
        # Filters still apply through the view.
        assert con.execute("SELECT count(*) FROM support_tickets.serving_embeddings WHERE date = '2026-03-02'"
                           ).fetchone()[0] == 2
    finally:
        con.close()
    views = tmp_path / "warehouse.sql"
    serving.write_views_sql(views, str(root))
    assert "QUALIFY row_number() OVER (PARTITION BY record_id ORDER BY date DESC) = 1" in views.read_text()
