"""KPIs (ASA, AHT, service level, abandon rate, occupancy, estimate accuracy). Pure."""

from callcenterd.core.kpis.compute import (
    GROUPINGS,
    SL_DENOMINATORS,
    AgentEvent,
    KpiRow,
    KpiSettings,
    agent_state_seconds,
    compute_kpis,
    wrapup_by_call,
)

__all__ = [
    "GROUPINGS",
    "SL_DENOMINATORS",
    "AgentEvent",
    "KpiRow",
    "KpiSettings",
    "agent_state_seconds",
    "compute_kpis",
    "wrapup_by_call",
]
