"""The daily partitions every dated asset shares."""

import dagster as dg

from batch_inference.settings import load_settings

# The last partition is the last complete day (UTC); a day's data is scored once it is over.
daily_partitions = dg.DailyPartitionsDefinition(start_date=load_settings().partitions_start, end_offset=0)

# One partition per run, deliberately (Dagster's default backfill behaviour, kept on purpose). Dagster 1.13 records partitioned asset checks and
# per-partition materialization metadata only for single-partition runs: a ranged run (a
# multi-partition backfill policy) stores its check results without a partition, leaves each
# partition's checks "planned", and gives every partition of the range the same metadata. The
# checks and per-day metadata are what make a backfill trustworthy, so each run scores one day
# (in one process: the in-process executor pays imports and the model load once per run).
# A `BackfillPolicy.multi_run(N)` here would cut the number of runs by N and lose that.
