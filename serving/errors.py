"""The one exception every handler raises for an error response, so status, message and field details are decided
where the problem is found and rendered in one place."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from plinth.serving.protocol import ErrorResponse, FieldError


class APIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        details: Sequence[FieldError] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = list(details)
        self.headers = dict(headers or {})

    @classmethod
    def invalid(cls, details: Sequence[FieldError]) -> APIError:
        """A 400 whose message lists every field at fault."""
        message = "; ".join(f"{d.field}: {d.message}" if d.field else d.message for d in details)
        return cls(400, message, details)

    def body(self) -> ErrorResponse:
        return ErrorResponse(error=self.message, details=self.details)


def field_path(loc: Sequence[str | int]) -> str:
    """('inputs', 0, 'shape') -> 'inputs[0].shape'."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else part)
    return path
