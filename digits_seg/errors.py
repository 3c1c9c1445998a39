"""Error types shared by every layer; each carries a message meant for a person."""


class DigitsSegError(Exception):
    """Base error: `message` is shown to the user, `field` names the bad input if any."""

    status = 400

    def __init__(self, message, field=None, detail=None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.detail = detail


class ValidationError(DigitsSegError):
    """User input (form field, file, pixel value) is invalid; the message says how to fix it.

    `errors` lists every problem found, each `{"field", "label", "message"}` (a form shows
    each next to its field; the JSON API returns the list); `message`/`field` are the first.
    """

    def __init__(self, message, field=None, detail=None, label=None, errors=None):
        super().__init__(message, field=field, detail=detail)
        if errors is None:
            errors = [{"field": field, "label": label or field, "message": message}] if field else []
        self.errors = list(errors)

    @classmethod
    def of(cls, errors):
        """One error for several field problems (the first one is the message)."""
        first = errors[0]
        return cls(first["message"], field=first["field"], label=first.get("label"), errors=errors)


class NotFoundError(DigitsSegError):
    """A job, file or resource does not exist."""

    status = 404


class ConflictError(DigitsSegError):
    """The request conflicts with current state (e.g. deleting a dataset that a model uses)."""

    status = 409


class JobAborted(DigitsSegError):
    """Raised by a domain function when `should_stop()` turned true; the job becomes `aborted`."""

    def __init__(self, message="aborted by the user"):
        super().__init__(message)
