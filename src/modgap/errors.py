"""Exception types shared by every stage, so the CLI can report them uniformly."""


class ModgapError(Exception):
    """Base class: an error the user can fix (bad input, bad config, corrupted file)."""


class ConfigError(ModgapError):
    """The configuration is invalid; the message names the offending key."""


class ChecksumError(ModgapError):
    """A file's sha256 does not match the expected value; the message names the file."""


class InvalidEmbeddingsError(ModgapError):
    """Embeddings contain NaN/Inf, zero rows, the wrong dimension or too few samples."""


class MissingInputError(ModgapError):
    """A required input file or folder does not exist; the message names it and what writes it."""


class ManifestError(ModgapError):
    """A dataset manifest is unreadable, lacks columns, has duplicate ids or an empty/invalid split."""


class InvalidStateError(ModgapError):
    """A saved fitted state (``state.json`` + ``state.safetensors``) is unreadable, incomplete or inconsistent."""


class DownloadError(ModgapError):
    """A remote resource could not be fetched or is incomplete."""


class NonFiniteError(ModgapError):
    """A result holds NaN or Inf; it is never written (the message names the key or array)."""


class LockedError(ModgapError):
    """Another run holds the output folder's lock."""
