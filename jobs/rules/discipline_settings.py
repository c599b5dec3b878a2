"""Settings of the discipline rules (a section of an account's `rules:`). Placeholder until they land."""

from pydantic import BaseModel, ConfigDict


class DisciplineSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
