"""Wazzup (WhatsApp) public API v3: sending messages, channels, and knowing our own messages."""

from connectors.wazzup.client import Channel, Template, WazzupClient, crm_message_id
from connectors.wazzup.errors import NoActiveChannel, WazzupAuthError, WazzupError
from connectors.wazzup.ours import is_our_message

__all__ = ["Channel", "NoActiveChannel", "Template", "WazzupAuthError", "WazzupClient", "WazzupError",
           "crm_message_id", "is_our_message"]
