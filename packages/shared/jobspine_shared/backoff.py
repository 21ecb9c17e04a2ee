"""Exponential backoff with jitter, so many workers and clients do not reconnect in lockstep."""

from __future__ import annotations

import random


class Backoff:
    """Delays ``initial, initial*factor, …`` capped at ``maximum``, each jittered by ±``jitter``.

    ``reset()`` after a success starts over. ``rng`` is injectable for deterministic tests;
    without it the jitter comes from the ``random`` module's generator (:func:`jittered`):
    no seeding per backoff (it reads the system's entropy, a cost every reliable write of a
    worker would pay), and unlike a ``Random`` of our own made at import, it is seeded again
    in a forked child, so the processes of a preforking app do not back off in lockstep.
    """

    def __init__(
        self,
        initial: float = 0.5,
        maximum: float = 30.0,
        *,
        factor: float = 2.0,
        jitter: float = 0.25,
        rng: random.Random | None = None,
    ) -> None:
        if initial <= 0 or maximum < initial or factor < 1 or not 0 <= jitter < 1:
            raise ValueError("need 0 < initial <= maximum, factor >= 1, 0 <= jitter < 1")
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.jitter = jitter
        self._rng = rng
        self._attempt = 0

    @property
    def attempt(self) -> int:
        """How many delays were handed out since the last reset."""
        return self._attempt

    def next_delay(self) -> float:
        base = min(self.maximum, self.initial * self.factor**self._attempt)
        self._attempt += 1
        return jittered(base, self.jitter, self._rng)

    def reset(self) -> None:
        self._attempt = 0


def jittered(value: float, jitter: float, rng: random.Random | None = None) -> float:
    """``value`` scaled by a uniform factor in ``[1 - jitter, 1 + jitter]``."""
    source = rng or random
    return value * (1 + jitter * (2 * source.random() - 1))
