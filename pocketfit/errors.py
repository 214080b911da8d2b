"""The errors pocketfit raises. The library raises these; only the CLI maps them to exit codes.

Each message names the item, the rule and, where there is one, the fix.
"""


class PocketfitError(Exception):
    """Base of every error pocketfit raises on purpose."""


class BadInput(PocketfitError):
    """The user gave something pocketfit cannot use: a path, a name, a file, an option."""


class ModelNotFound(BadInput):
    pass


class NotAModel(BadInput):
    pass


class UnknownDevice(BadInput):
    pass


class InvalidDeviceProfile(BadInput):
    pass


class InvalidArtifact(BadInput):
    """A file that should be a model artifact is missing, truncated or not of its format."""


class OutputNotWritable(BadInput):
    pass


class UnsupportedCombination(BadInput):
    """A format, recipe or task pairing that pocketfit does not offer."""


class ExportFailed(PocketfitError):
    """The exporter itself could not turn the model into the format."""


class CheckFailed(PocketfitError):
    """A budget or parity check ran and did not pass."""


class EnvironmentLimit(PocketfitError):
    """The machine lacks what the job needs: a runtime, a permission, a kernel feature."""


class MeasurementFailed(PocketfitError):
    """The measuring child process crashed, hung or was killed."""


class InvalidResult(BadInput):
    """A benchmark result (pulled from a handset, or given as a file) that breaks its schema."""


class NoHandset(EnvironmentLimit):
    """No handset is attached (or the one asked for is not): bench-device cannot run."""
