"""fairness.* — bias in the data (representation, base rates, proxies) and in the model's
decisions (disparities, intersections, counterfactual probes)."""

from . import base_rates, counterfactual, disparity, proxies, representation  # noqa: F401
