"""Therapies: dosing schedules and systemic pharmacokinetics (the tissue coupling follows)."""

from .pk import Administration, PKModel, PKState, expm, schedule

__all__ = ["Administration", "PKModel", "PKState", "expm", "schedule"]
