"""The label-noise concentration scan of ``data.poisoning.label_issues`` on constructed numbers."""

from __future__ import annotations

import numpy as np

from mlwarden.checks.poisoning import label_scan


def _dims(rng: np.random.Generator, n: int) -> tuple[np.ndarray, list[label_scan.Dimension]]:
    group = rng.integers(0, 4, n).astype(np.float64)
    cat = label_scan.categorical("group", group, ["a", "b", "c", "d"])
    num = label_scan.quantiles("x", rng.normal(size=n))
    return group, [cat, num]


def test_noise_piled_in_one_category_is_flagged_and_only_there() -> None:
    rng = np.random.default_rng(0)
    n = 20_000
    group, dims = _dims(rng, n)
    noise = rng.uniform(0.0, 0.004, n)
    noise[group == 2] = rng.uniform(0.0, 0.12, int((group == 2).sum()))  # group c: ~15x the rest
    [hit] = label_scan.noise_concentration(noise, dims)
    assert hit["slice"] == "group = c" and hit["ratio"] > 10 and hit["z"] >= label_scan.NOISE_Z
    assert hit["excess_rows"] >= label_scan.MIN_EXCESS_SHARE * n


def test_even_noise_and_numeric_slices_are_not_flagged() -> None:
    rng = np.random.default_rng(1)
    n = 20_000
    _, dims = _dims(rng, n)
    assert label_scan.noise_concentration(rng.uniform(0.0, 0.3, n), dims) == []
    # deciles are not tested: noise naturally gathers near a decision threshold
    x = dims[1]
    noise = np.where(x.codes == 5, 0.4, 0.001)
    assert label_scan.noise_concentration(noise, dims) == []
