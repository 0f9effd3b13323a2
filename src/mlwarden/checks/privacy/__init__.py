"""data.privacy.* — personal data in the datasets: PII values and re-identification risk."""

from . import kanonymity, pii  # noqa: F401
