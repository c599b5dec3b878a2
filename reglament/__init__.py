"""Reglament: makes a sales department follow its own regulations inside its CRM."""

__version__ = "0.1.0"
