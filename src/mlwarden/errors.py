"""One root error and one base per subsystem.

Every error mlwarden raises on purpose derives from :class:`MlwardenError`; the CLI maps
them to exit code 2 (bad input or usage). Anything else reaching the CLI is a bug and
exits 3. Messages say what went wrong and how to fix it.
"""


class MlwardenError(Exception):
    """Bad input or usage: the user can fix it. Exit code 2."""


class SpecError(MlwardenError):
    """The pipeline spec (mlwarden.yaml) is missing, malformed or invalid."""


class SourceError(MlwardenError):
    """A dataset, model file or other source cannot be found or read."""


class EngineError(MlwardenError):
    """The execution engine cannot start or reach its cluster."""


class ManifestError(MlwardenError):
    """A manifest file is missing or malformed."""
