"""Settings of the distribution rules (a section of an account's `rules:`). Placeholder until they land."""

from pydantic import BaseModel, ConfigDict


class DistributionSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
