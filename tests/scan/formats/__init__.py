"""Tests of the non-pickle model format scanners."""
