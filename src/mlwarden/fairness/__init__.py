"""Fairness measurement: groups, the model's decisions, group metrics, bootstrap and tests.

Everything here works from *counts*: confusion counts per group (and per score bin for
calibration) are a fold over the data, the metrics are functions of those counts, and the
bootstrap resamples the counts — so the whole audit costs one pass over the data.
"""
