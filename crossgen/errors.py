"""Named exceptions raised by crossgen. Every one of them is a user-facing problem with a clear message."""


class CrossgenError(Exception):
    """Base class of every error crossgen raises on purpose."""


class InvalidPromptError(CrossgenError, ValueError):
    """The prompt is empty, too long, or contains no usable word."""


class UnknownWordsError(InvalidPromptError):
    """None of the prompt's words is in the word-vector vocabulary."""

    def __init__(self, unknown: list[str], suggestions: dict[str, list[str]]):
        self.unknown = unknown
        self.suggestions = suggestions
        hints = "; ".join(f"{w!r} → {', '.join(s)}" for w, s in suggestions.items() if s)
        msg = f"No known word in the prompt (unknown: {', '.join(unknown)})."
        super().__init__(msg + (f" Try: {hints}." if hints else ""))


class InvalidImageError(CrossgenError, ValueError):
    """The image cannot be read: not an image, truncated, empty, or of an unsupported kind."""


class ImageTooLargeError(InvalidImageError):
    """The image has more pixels (or bytes) than crossgen accepts."""


class NotAnEmojiError(InvalidImageError):
    """The image does not look like an emoji (the out-of-domain probe): crossgen does not edit it."""


class CheckpointError(CrossgenError, RuntimeError):
    """Checkpoints are missing, corrupt, or do not match their manifest."""


class InvalidRequestError(CrossgenError, ValueError):
    """A request parameter (number of images, beam width, temperature, ...) is out of range."""


class UsageError(CrossgenError, ValueError):
    """A command line cannot run as given: a flag is missing, or does not fit the other flags or the data."""


class DataError(CrossgenError, ValueError):
    """A data set cannot be used as given: too few images to split, no captions, a wrong package version."""


class DataNotFoundError(DataError, FileNotFoundError):
    """A data set, folder or package a command was pointed at is not there (a wrong --data, --root or --from)."""
