"""The error bad input data raises (``seglight.data.io`` re-exports it)."""


class DataError(ValueError):
    """Bad input data; the message names the offending file."""
