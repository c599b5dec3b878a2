"""Errors the sandbox state raises; `api.py` turns them into application/problem+json answers.

Validation messages reuse the wording amoCRM shows (Symfony validator texts), e.g.
{"code": "NotSupportedChoice", "path": "custom_fields_values.0.field_id",
 "detail": "The value you selected is not a valid choice."}  (CONFIRMED shape).
Codes other than NotSupportedChoice are UNCONFIRMED: plausible Symfony-style names.
"""

from __future__ import annotations

NOT_SUPPORTED_CHOICE = ("NotSupportedChoice", "The value you selected is not a valid choice.")
FIELD_MISSING = ("FieldMissing", "This field is missing.")
NOT_BLANK = ("NotBlank", "This value should not be blank.")
INVALID_TYPE = ("InvalidType", "This value should be of type {type}.")
NOT_FOUND = ("NotFound", "The entity was not found.")


class ValidationFailed(Exception):
    """A request body failed validation: HTTP 400 with `validation-errors`."""

    def __init__(self, errors: list[dict]):
        super().__init__("Request validation failed")
        self.errors = errors


class NotFound(Exception):
    """An addressed entity does not exist: HTTP 404 problem."""

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class Problems:
    """Collects validation errors per request_id so one answer can list them all."""

    def __init__(self) -> None:
        self._by_request: dict[str, list[dict]] = {}

    def add(self, request_id: str, path: str, kind: tuple[str, str], **fmt: str) -> None:
        code, detail = kind
        self._by_request.setdefault(request_id, []).append(
            {"code": code, "path": path, "detail": detail.format(**fmt)}
        )

    def __bool__(self) -> bool:
        return bool(self._by_request)

    def raise_if_any(self) -> None:
        if self._by_request:
            raise ValidationFailed(
                [{"request_id": rid, "errors": errs} for rid, errs in self._by_request.items()]
            )
