"""The 14 SLIs of the SRE guide (M1-M14), each with where to read it: SQL over the lake's views, a
Prometheus metric the runs push, or Dagster's run records. `{p}` is a pipeline name (a validated
identifier). The README's SLI table lists these, and a test runs every query and checks every metric."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SLI:
    code: str
    name: str
    sql: str = ""  # over serving.connect() views, per partition
    metric: str = ""  # pushed to the Pushgateway (PromQL shown in the README)
    dagster: str = ""  # from Dagster's run records

    def query(self, pipeline: str) -> str:
        from batch_inference.validation import validate_identifier

        return self.sql.format(p=validate_identifier(pipeline))


SLIS = [
    SLI("M1", "success rate", metric="batch_inference_runs_total",
        dagster="runs by status, tag batch_inference/pipeline (UI Runs page, GraphQL runsOrError)"),
    SLI("M2", "end-to-end latency per partition",
        sql="SELECT partition, epoch(ended_at) - epoch(started_at) AS seconds FROM {p}.ledger ORDER BY partition",
        metric="batch_inference_duration_seconds"),
    SLI("M3", "throughput (records/s)", sql="SELECT partition, rows_per_second FROM {p}.ledger ORDER BY partition",
        metric="batch_inference_rows_per_second"),
    SLI("M4", "cost per million records", metric="batch_inference_cost_per_million_rows"),
    SLI("M5", "completeness (in = scored + quarantined)",
        sql="SELECT partition, rows_in, rows_scored, rows_quarantined, rows_scored + rows_quarantined = rows_in "
            "AS complete FROM {p}.ledger ORDER BY partition",
        dagster="check predictions_completeness per partition"),
    SLI("M6", "model version consistency",
        sql="SELECT date, count(DISTINCT model_version) AS versions, any_value(model_version) AS version "
            "FROM {p}.serving_predictions GROUP BY date ORDER BY date",
        metric="batch_inference_model_version_mismatch"),
    SLI("M7", "feature freshness lag", metric="batch_inference_scoring_freshness_lag_seconds"),
    SLI("M8", "error rate per record (quarantine)",
        sql="SELECT partition, rows_quarantined / rows_in AS quarantine_rate FROM {p}.ledger ORDER BY partition",
        metric="batch_inference_quarantined_rows"),
    SLI("M9", "tail (p99) batch latency", metric="batch_inference_batch_duration_seconds_bucket"),
    SLI("M10", "CPU / GPU utilisation", metric="batch_inference_cpu_utilization_ratio"),
    SLI("M11", "retries", dagster="STEP_UP_FOR_RETRY events of the pipeline's runs (UI run timeline)"),
    SLI("M12", "time to detection", metric="batch_inference_detection_time_seconds",
        dagster="per failed partition, single or ranged run (partition_scope.failed_partitions_of_run)"),
    SLI("M13", "time to recovery", metric="batch_inference_recovery_time_seconds",
        dagster="per partition at its publish, from finished runs of any shape (partition_scope.partition_history)"),
    SLI("M14", "provenance completeness",
        sql="SELECT s.date, avg(CASE WHEN l.artifact_sha256 <> '' AND l.input_sha256 <> '' THEN 1.0 ELSE 0.0 END) "
            "AS provenance_complete FROM {p}.serving_predictions s LEFT JOIN {p}.ledger l "
            "ON l.run_id = s.run_id AND l.partition = CAST(s.date AS VARCHAR) GROUP BY s.date ORDER BY s.date",
        metric="batch_inference_provenance_completeness_ratio"),
]
