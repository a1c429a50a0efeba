"""Building blocks of the scenario schema: the strict, frozen section base and the field helper."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


def P(default: Any = ..., *, unit: str = "", desc: str, source: str = "", **constraints) -> Any:
    """A schema field with its unit and source recorded for the reference docs and errors."""
    extra = {"unit": unit, "source": source}
    return Field(default, description=desc, json_schema_extra=extra, **constraints)


class Section(BaseModel):
    """Base of every scenario section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
