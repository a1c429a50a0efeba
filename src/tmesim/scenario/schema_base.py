"""Building blocks of the scenario schema: the strict, frozen section base and the field helper."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: largest magnitude of any number in a scenario: far beyond every physical value, and small
#: enough that a value still fits the float32 columns of the result file
MAX_MAGNITUDE = 1e30


def P(default: Any = ..., *, unit: str = "", desc: str, source: str = "", **constraints) -> Any:
    """A schema field with its unit and source recorded for the reference docs and errors."""
    extra = {"unit": unit, "source": source}
    return Field(default, description=desc, json_schema_extra=extra, **constraints)


class Section(BaseModel):
    """Base of every scenario section: unknown keys are errors, values are immutable, and
    numbers are finite (no .inf or .nan) and at most :data:`MAX_MAGNITUDE` in magnitude."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _bounded_numbers(cls, value):
        if isinstance(value, float) and abs(value) > MAX_MAGNITUDE:
            raise ValueError(f"a number between -{MAX_MAGNITUDE:g} and {MAX_MAGNITUDE:g}")
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
            raise ValueError("a whole number between -2**63 and 2**63 - 1")
        return value
