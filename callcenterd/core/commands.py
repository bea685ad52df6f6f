"""Commands the pure core emits.  The wiring executes them on a PbxPort.

Each one maps to exactly one PbxPort method, so a decision can be logged,
tested and replayed without any I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from callcenterd.pbx.api import HoldSpec, OriginateRequest, WaitingCall


@dataclass(frozen=True, slots=True)
class Originate:
    node: str
    request: OriginateRequest


@dataclass(frozen=True, slots=True)
class Bridge:
    node: str
    leg_a: str
    leg_b: str


@dataclass(frozen=True, slots=True)
class Hangup:
    node: str
    leg_id: str
    cause: int = 16


@dataclass(frozen=True, slots=True)
class Hold:
    node: str
    call: WaitingCall
    spec: HoldSpec


@dataclass(frozen=True, slots=True)
class UpdateHold:
    node: str
    leg_id: str
    spec: HoldSpec


@dataclass(frozen=True, slots=True)
class Redirect:
    node: str
    leg_id: str
    destination: str


Command = Union[Originate, Bridge, Hangup, Hold, UpdateHold, Redirect]
