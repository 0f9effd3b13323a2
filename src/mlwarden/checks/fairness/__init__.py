"""Checks of bias and fairness: the model's disparities between groups and their intersections."""

from . import disparity  # noqa: F401
