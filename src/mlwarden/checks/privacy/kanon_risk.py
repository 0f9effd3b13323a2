"""Population re-identification risk for ``data.privacy.k_anonymity``, the way disclosure control does.

A row unique in a *sample* need not be unique among the people the sample was drawn from:
sample uniqueness grows as the sample shrinks, so it says little about re-identification.
Statistical disclosure control (sdcMicro's ``modRisk``, Skinner & Holmes 1998, Elamir &
Skinner 2006) estimates the population frequency ``F`` of each combination instead:

- a Poisson log-linear model of main effects gives each combination's expected count in the
  sample, ``mu = n · prod_j p_j(v_j)`` (``p_j``: the share of the value in column j);
- with a sampling fraction ``pi = n / N``, the people *not* sampled who share the combination
  are Poisson with mean ``mu · (1 − pi) / pi``, so ``P(F = 1 | f = 1) = exp(−that)`` and
  ``P(F < 5 | f) = P(Poisson(that) ≤ 4 − f)``.

Independence overstates the risk of correlated quasi-identifiers (age and birth year): the
estimate errs on the careful side. With ``N = n`` (a census) the population is the sample.

Quasi-identifiers differ in how well they link: a fine location or a full birth date pins a
person down in public records; coarse demographics (an age in years, sex, race, marital
status) are shared by many and public only in aggregate. :func:`strength` sorts them so the
severity can weigh them.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from ..data.rowhash import index_of

Strength = Literal["strong", "medium", "weak"]
FINE_LOCATION = frozenset({"zip", "zipcode", "postal", "postcode", "geo", "geohash", "lat", "lon", "lng",
                           "latitude", "longitude", "address", "street"})
BIRTH = frozenset({"dob", "birth", "birthdate", "birthday"})
COARSE_PLACE = frozenset({"city", "county", "town", "district", "municipality"})
DEMOGRAPHIC = frozenset({"age", "sex", "gender", "race", "ethnicity", "ethnic", "marital", "nationality"})
FINE_VALUES = 1000
"""More distinct values than this make any quasi-identifier strong (a full date, an exact amount)."""
DAYS_OF_YEAR = 366
"""A birth column with more values than this holds full dates, not years."""
RANK = {"weak": 0, "medium": 1, "strong": 2}


def strength(tokens: set[str], distinct: int | None) -> tuple[Strength, str]:
    """How well one quasi-identifier links to a person, and why (``distinct``: None when over budget)."""
    many = distinct is None or distinct > FINE_VALUES
    if tokens & FINE_LOCATION:
        return "strong", "fine location"
    if tokens & BIRTH:
        full = distinct is None or distinct > DAYS_OF_YEAR
        return ("strong", "full birth date") if full else ("medium", "birth year or month")
    if many:
        return "strong", f"more than {FINE_VALUES} distinct values"
    if tokens & COARSE_PLACE:
        return "medium", "coarse place"
    if tokens & DEMOGRAPHIC:
        return "weak", "coarse demographic"
    return ("medium", "over 50 distinct values") if distinct is not None and distinct > 50 else ("weak", "few values")


def population_risk(counts: np.ndarray, parts: np.ndarray, marginals: list[tuple[np.ndarray, np.ndarray]],
                    n: int, population: int) -> dict[str, Any]:
    """Estimated population uniques and rows in population classes under 5.

    ``counts``/``parts``: each class's sample count and its per-column value hashes;
    ``marginals[j]``: (sorted value hashes, counts) of column j (empty: column over budget,
    every value taken as seen once)."""
    return population_summary(*population_sums(counts, parts, marginals, n, population), n, population)


def sampling_fraction(n: int, population: int) -> float:
    return min(1.0, n / population) if population else 1.0


def population_sums(counts: np.ndarray, parts: np.ndarray, marginals: list[tuple[np.ndarray, np.ndarray]],
                    n: int, population: int) -> tuple[float, float]:
    """(estimated population uniques, rows in population classes under 5) of some of the classes:
    each class counts alone, so the classes can be taken a bucket at a time and the sums added."""
    pi = sampling_fraction(n, population)
    log_mu = np.full(counts.size, np.log(n), dtype=np.float64)
    for j, (keys, cnt) in enumerate(marginals):
        if keys.size:
            at = index_of(keys, parts[:, j])
            c = np.where(at >= 0, cnt[at], 1)
        else:
            c = np.ones(counts.size)
        log_mu += np.log(c / n)
    unseen = np.exp(log_mu) * (1 - pi) / pi
    from scipy.stats import (
        poisson,  # scipy.stats is slow to import: only when the check runs
    )

    small = counts < 5
    p_small = np.zeros(counts.size)
    p_small[small] = poisson.cdf(4 - counts[small], unseen[small])
    uniq = counts == 1
    return float(np.exp(-unseen[uniq]).sum()), float((counts * p_small).sum())


def population_summary(pop_uniques: float, pop_small: float, n: int, population: int) -> dict[str, Any]:
    return {"population_size": int(population), "sampling_fraction": round(sampling_fraction(n, population), 6),
            "model": "Poisson log-linear, main effects (Skinner & Holmes 1998)",
            "estimated_population_uniques": round(pop_uniques, 1),
            "share_unique": round(pop_uniques / n, 6) if n else 0.0,
            "share_k_lt_5": round(pop_small / n, 6) if n else 0.0}
