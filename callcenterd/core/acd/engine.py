"""The ACD: which agent takes which caller.

Pure and single-threaded: every input is a method call that returns the
:mod:`~callcenterd.core.commands` to execute and the
:mod:`~callcenterd.core.facts` to record, in order.  Time comes only from
the injected ``clock``; the wiring calls :meth:`Acd.tick` at
:meth:`Acd.next_deadline`.

Routing happens at the end of every input (``_route``): callers that became
routable are served first, in (weight, priority, wait) order, each by its
queue's strategy over the indexed ready agents; then each agent that
became ready takes the best caller of all the queues it serves (on its
node).  After ``_route`` no routable caller has an eligible ready agent.

Decisions worth knowing:

* Every ``AgentOffered`` is closed by exactly one ``CallerConnected`` (same
  leg) or ``AgentRingNoAnswer``.  Offers we withdraw ourselves carry a
  reason that is not a PBX outcome: ``answered-elsewhere`` (ring-all loser,
  Hangup cause 26 like app_queue), ``caller-hangup``, ``caller-timeout``,
  ``caller-exit``, ``paused``, ``logged-out``, ``pbx-down``, ``pbx-restart``.
  Only PBX outcomes other than ``cancelled`` count towards auto-pause.
* Ring timeout is enforced here (tick), not only by the PBX: the agent leg
  is hung up and forgotten at once; a late LegHungUp/LegAnswered for it is
  ignored.
* Overflow to a queue keeps the ORIGINAL ``enqueued_at`` for ordering (the
  caller keeps its place among callers of equal priority) while
  ``max_wait``, hold time and skill relaxation restart from the move.  The
  caller gets a fresh ``Hold`` so the PBX re-stamps the new queue on the
  leg.  A queue already visited is never re-entered (no overflow loops).
* A caller that leaves with no overflow configured is hung up (app_queue
  would continue the dialplan: configure ``overflow_destination`` for that).
* ``CallerConnected.hold_s`` / ``CallCompleted.hold_s`` / ``wait_s`` count
  from entry into the current queue (queue_log semantics).
"""

from __future__ import annotations

from callcenterd.core.acd.admission import Admission
from callcenterd.core.acd.agent_lifecycle import AgentLifecycle
from callcenterd.core.acd.errors import (
    AcdError,
    AgentStateError,
    DuplicateCall,
    UnknownAgent,
    UnknownQueue,
)
from callcenterd.core.acd.resync import Resync
from callcenterd.core.acd.routing import Routing
from callcenterd.core.acd.state import Output
from callcenterd.core.acd.views import Views

__all__ = ["Acd", "AcdError", "AgentStateError", "DuplicateCall", "Output", "UnknownAgent", "UnknownQueue"]


class Acd(Admission, Routing, AgentLifecycle, Resync, Views):
    """Automatic call distribution over queues, agents and PBX nodes.

    One use case per module, all on the shared :class:`AcdState`:
    ``admission`` (join, wait, leave), ``routing`` (offers, answers,
    completion), ``agent_lifecycle`` (login, pause, readiness), ``resync``
    (PBX down / up) and ``views``.
    """
