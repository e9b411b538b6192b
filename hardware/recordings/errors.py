"""The error every recording reader raises."""


class RecordingError(ValueError):
    """A recording cannot be read as asked; the message says what is wrong and what to do."""
