"""E-mail over SMTP: HTML alerts with a plain-text part."""

from connectors.email.mailer import EmailError, Mailer, connect

__all__ = ["EmailError", "Mailer", "connect"]
