"""Bitrix24's error answers: {"error": CODE, "error_description": TEXT} with the HTTP status it uses."""

from __future__ import annotations

from .params import BadParams


class ApiError(Exception):
    def __init__(self, status: int, code: str, description: str):
        super().__init__(f"{code}: {description}")
        self.status = status
        self.code = code
        self.description = description

    def body(self) -> dict:
        return {"error": self.code, "error_description": self.description}


def from_bad_params(e: BadParams) -> ApiError:
    return ApiError(400, e.code, e.description)


# System errors (CONFIRMED: _includes/system-errors.md), and the few the docs don't list (see README).
def query_limit() -> ApiError:
    return ApiError(503, "QUERY_LIMIT_EXCEEDED", "Too many requests")


def operation_time_limit() -> ApiError:
    return ApiError(429, "OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit")


def injected(status: int) -> ApiError:
    """An answer /_sandbox/faults injects, in the body Bitrix24 gives that status (reference: system codes)."""
    if status == 503:
        return query_limit()
    if status == 429:
        return operation_time_limit()
    if status >= 500:
        return ApiError(status, "INTERNAL_SERVER_ERROR", "Internal server error")
    return ApiError(status, "ERROR_CORE", "Fault injected by /_sandbox/faults")


def method_not_found(method: str) -> ApiError:
    return ApiError(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")


def no_auth() -> ApiError:
    return ApiError(401, "NO_AUTH_FOUND", "Wrong authorization data")


def invalid_credentials() -> ApiError:
    return ApiError(401, "INVALID_CREDENTIALS", "Invalid request credentials")


def invalid_token() -> ApiError:
    return ApiError(401, "invalid_token", "The access token provided is invalid.")


def expired_token() -> ApiError:
    return ApiError(401, "expired_token", "The access token provided has expired.")


def wrong_auth_type() -> ApiError:
    return ApiError(403, "WRONG_AUTH_TYPE", "Current authorization type is denied for this method")


def not_found() -> ApiError:
    return ApiError(400, "", "Not found")


def id_invalid(name: str = "ID") -> ApiError:
    return ApiError(400, "", f"{name} is not defined or invalid.")
