"""fairness.* — bias in the data (representation, base rates, proxies) and in the model's
decisions (disparities, intersections, counterfactual probes).

Its modules load on demand (see ``mlwarden.checks.CATALOG``).
"""
