"""Telegram Bot API: HTML alerts to managers and heads."""

from connectors.telegram.bot import TelegramBot, TelegramError, escape, format_alert

__all__ = ["TelegramBot", "TelegramError", "escape", "format_alert"]
