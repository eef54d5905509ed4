"""The daily partitions every dated asset shares."""

import dagster as dg

from batch_inference.settings import load_settings

# The last partition is the last complete day (UTC); a day's data is scored once it is over.
daily_partitions = dg.DailyPartitionsDefinition(start_date=load_settings().partitions_start, end_offset=0)
