"""Store demand: a daily per-store, per-item demand forecast fed by an upstream Dagster asset."""
