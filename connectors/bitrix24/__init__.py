"""Bitrix24: the REST client (client.py), its credentials (auth.py) and errors (errors.py)."""

from connectors.bitrix24 import webhooks
from connectors.bitrix24.client import BatchResult, Bitrix24Client, budget_key
from connectors.bitrix24.errors import (AccessDenied, AmbiguousWriteError, ApiError, AuthError, Bitrix24Error,
                                        Bitrix24GaveUp, MethodNotFound, NotFound, OperationTimeLimit)

__all__ = ["webhooks", "Bitrix24Client", "BatchResult", "budget_key", "Bitrix24Error", "ApiError", "AuthError", "AccessDenied",
           "MethodNotFound", "NotFound", "OperationTimeLimit", "Bitrix24GaveUp", "AmbiguousWriteError"]
