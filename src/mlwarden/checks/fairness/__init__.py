"""fairness.* — bias in the data (representation, base rates, proxies) and in the model's
decisions (disparities, intersections, counterfactual probes)."""

from . import counterfactual, data_bias, disparity, proxies  # noqa: F401
