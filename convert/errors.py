"""The one exception type the converter raises for anything a user can fix."""


class ConversionError(Exception):
    """A one-line, user-facing reason why a model or input cannot be converted."""
