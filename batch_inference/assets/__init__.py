"""Thin Dagster assets: read, call the library, write, report metadata."""
