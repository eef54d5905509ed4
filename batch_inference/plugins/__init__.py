"""Plug-in points of the platform: input adapters, output heads and model formats.

A pipeline names its plug-ins in its `defs.yaml` by import path (`package.module:Name`); the
platform code takes them as parameters and names no example column, asset or model.
"""
