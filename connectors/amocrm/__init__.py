"""amoCRM REST API v4: the client, its errors and webhook subscription helpers."""

from connectors.amocrm.client import AmoCRMClient
from connectors.amocrm.errors import (
    AmbiguousWriteError,
    AmoCRMError,
    AmoCRMGaveUp,
    AmoCRMValidationError,
    ApiError,
    AuthError,
    ForbiddenError,
    NotFoundError,
)

__all__ = [
    "AmoCRMClient", "AmoCRMError", "AmoCRMValidationError", "AmoCRMGaveUp", "AmbiguousWriteError",
    "ApiError", "AuthError", "ForbiddenError", "NotFoundError",
]
