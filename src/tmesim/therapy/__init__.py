"""Therapies: dosing schedules, systemic pharmacokinetics and delivery into the tissue."""

from .delivery import CARRIER_LEDGER_KEYS, LEDGER_KEYS, AgentDelivery, Therapy
from .pk import Administration, PKModel, PKState, expm, schedule

__all__ = [
    "CARRIER_LEDGER_KEYS",
    "LEDGER_KEYS",
    "Administration",
    "AgentDelivery",
    "PKModel",
    "PKState",
    "Therapy",
    "expm",
    "schedule",
]
