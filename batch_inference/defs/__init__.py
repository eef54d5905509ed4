"""Pipelines of this code location: one folder each, with its defs.yaml and its own code."""
