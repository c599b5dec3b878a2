"""Clients for the outside systems Reglament talks to (amoCRM now; Wazzup, SMS, Telegram later).

Shared plumbing lives here: `http` (retries, metrics, redaction), `ratelimit`
(one request budget shared by every process through Redis) and `redact`.
"""
