"""Settings of the calls rules (a section of an account's `rules:`). Placeholder until they land."""

from pydantic import BaseModel, ConfigDict


class CallsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
