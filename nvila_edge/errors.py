"""One exception type per failure family.

Each carries a one-line message that says what went wrong and what to do; the CLI prints that line and
exits non-zero (tracebacks only with --debug).
"""


class NvilaEdgeError(Exception):
    """Base class: ``str(err)`` is the one line a user sees."""


class CheckpointError(NvilaEdgeError):
    """A checkpoint folder is missing parts or disagrees with its own config."""


class ArtifactError(NvilaEdgeError):
    """An export or engines folder (or its manifest.json) is broken or of another schema version."""


class EngineMismatchError(NvilaEdgeError):
    """An engine was built for another TensorRT version or GPU."""


class UnsupportedError(NvilaEdgeError):
    """A target, recipe or option combination that cannot work (e.g. FP8 on Orin)."""


class DeviceError(NvilaEdgeError):
    """A CUDA or TensorRT call failed on the device (out of memory, a failed launch, a lost context)."""


class SourceError(NvilaEdgeError):
    """A camera, stream or file source cannot be opened or read."""


class InputError(NvilaEdgeError):
    """A request the model cannot take (prompt too long for the context, unreadable image, ...)."""
