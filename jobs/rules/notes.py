"""The notes rules leave in a lead: one short Russian sentence saying which rule acted and why."""

from __future__ import annotations

from datetime import datetime

from reglament.rule_settings import RuleSettings
from reglament.calendar import WorkCalendar
from reglament.crm import AddNote


def when(dt: datetime, calendar: WorkCalendar) -> str:
    """A due time as managers read it: local, «24.11 10:00»."""
    return dt.astimezone(calendar.tz).strftime("%d.%m %H:%M")


def note(settings: RuleSettings, lead_id: int, key: str, *texts: tuple[str, dict]) -> list[AddNote]:
    """[AddNote] built from note templates (name, values), joined by a space; [] when notes are off."""
    if not settings.notes:
        return []
    text = " ".join(getattr(settings.note_texts, name).format(**values) for name, values in texts)
    return [AddNote(lead_id=lead_id, text=text, action_key=key)]
