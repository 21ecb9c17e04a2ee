"""Job states and the transition table of the wire contract, as data."""

from __future__ import annotations

import enum
from collections.abc import Mapping


class JobState(enum.StrEnum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


S = JobState

#: What each state may become, and what causes it; anything else is refused.
_TARGETS: Mapping[JobState, Mapping[JobState, str]] = {
    S.CREATED: {
        S.RUNNING: "a worker's claim",
        S.PAUSED: "a user's pause (hold the job)",
        S.CANCELLED: "a user's cancel",
    },
    S.RUNNING: {
        S.CANCELLED: "a user's cancel (the worker's lease is revoked)",
        S.COMPLETED: "the worker's complete",
        S.FAILED: "the worker's fail, or the supervisor",
        S.PAUSED: "the worker's paused after a pause request, or the supervisor",
        S.CREATED: "a retryable failure with attempts left (by the server only)",
    },
    S.PAUSED: {S.CANCELLED: "a user's cancel", S.CREATED: "a user's resume"},
    S.FAILED: {S.CREATED: "a user's restart"},
    S.CANCELLED: {S.CREATED: "a user's restart"},
}

#: Every allowed transition: ``(from, to)`` -> what causes it.
TRANSITIONS: Mapping[tuple[JobState, JobState], str] = {
    (source, target): cause
    for source, targets in _TARGETS.items()
    for target, cause in targets.items()
}

#: States that no transition leaves.
FINAL_STATES: frozenset[JobState] = frozenset(
    s for s in JobState if not any(src == s for src, _ in TRANSITIONS)
)


#: Transitions only the server itself makes; no user or worker call asks for them.
SERVER_ONLY: frozenset[tuple[JobState, JobState]] = frozenset({(S.RUNNING, S.CREATED)})


def sources_of(cause: str) -> frozenset[JobState]:
    """The states a transition described as starting with ``cause`` leaves, e.g.
    ``sources_of("a user's resume")``: the table is the one place that says it."""
    return frozenset(src for (src, _), by in TRANSITIONS.items() if by.startswith(cause))


#: States a user's resume / restart applies to, read from the table.
RESUMABLE_STATES: frozenset[JobState] = sources_of("a user's resume")
RESTARTABLE_STATES: frozenset[JobState] = sources_of("a user's restart")

#: States that nothing but a user's restart leaves: the job has ended (completed, failed,
#: cancelled). A job is deleted only in one of them (``DELETE /api/jobs/{id}``, retention).
ENDED_STATES: frozenset[JobState] = frozenset(
    s
    for s in JobState
    if all(by.startswith("a user's restart") for (src, _), by in TRANSITIONS.items() if src == s)
)

#: What a user (or an admin) may ask of a job in each state, read from the table: pause holds
#: a created job or asks the worker of a running one to pause; delete takes an ended job.
#: The dashboard shows a button only in these states (``GET /ui/states.json``).
USER_ACTIONS: Mapping[str, frozenset[JobState]] = {
    "pause": sources_of("a user's pause") | sources_of("the worker's paused after a pause request"),
    "resume": RESUMABLE_STATES,
    "cancel": sources_of("a user's cancel"),
    "restart": RESTARTABLE_STATES,
    "delete": ENDED_STATES,
}


def can_transition(source: JobState, target: JobState) -> bool:
    """Whether the contract allows a job in ``source`` to move to ``target``."""
    return (source, target) in TRANSITIONS


def states_document() -> dict[str, object]:
    """The table as JSON for clients (the dashboard reads it from ``GET /ui/states.json``):
    states, transitions with their causes, final and ended states, and :data:`USER_ACTIONS`."""
    return {
        "states": [s.value for s in JobState],
        "transitions": [
            {"from": src.value, "to": dst.value, "by": by, "server_only": (src, dst) in SERVER_ONLY}
            for (src, dst), by in TRANSITIONS.items()
        ],
        "final_states": sorted(s.value for s in FINAL_STATES),
        "ended_states": sorted(s.value for s in ENDED_STATES),
        "user_actions": {
            action: sorted(s.value for s in states) for action, states in USER_ACTIONS.items()
        },
    }
