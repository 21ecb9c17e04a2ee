"""Typed commands at the edge: every payload (a REST request, a Socket.IO event's data) is
parsed once, here, by the one parser both transports use, into a frozen attrs command the
service takes. A malformed field is a ``validation_error`` naming it; limits from the
configuration (sizes of inputs, results and checkpoints) are checked by the service.

- :mod:`~server.commands.create`: ``job:create`` / ``POST /api/jobs``;
- :mod:`~server.commands.user`: the other user calls (one job, replays, sync, lists);
- :mod:`~server.commands.worker`: the ``/workers`` calls.

Import each command and parser from the module that defines it.
"""

from __future__ import annotations
