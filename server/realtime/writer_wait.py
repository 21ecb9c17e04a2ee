"""A websocket client's Engine.IO writer waits for its next packets without a task and a timer
per wake-up.

Engine.IO's writer task loops over ``AsyncSocket.poll``, which waits for the first packet
with ``asyncio.wait_for(queue.get(), ping_interval + ping_timeout)``. On Python 3.11 each wait
makes a task around the queue's ``get`` (registered in asyncio's task set, with a done
callback), a future, a ``functools.partial`` and a loop timer, and calls
``get_running_loop`` (a ``getpid`` system call) twice, and each wake-up takes two task steps
(the ``get`` task's, then the writer's). An emit to N clients wakes N writers, so this was
paid once per delivered packet whenever a client's packets came one per turn of the loop:
most on an instance that hears other instances' events over Redis a few at a time
(docs/performance.md, "The receivers' writer wake-ups").

:func:`lean_poll` is that ``poll`` with the wait replaced by :meth:`SendQueue.get_within
<server.realtime.send_queue.SendQueue.get_within>`: the same timeout (the writer ends and closes
the websocket once no packet came for ``ping_interval + ping_timeout``), the same end marker and
the same draining of what is queued, on one future per wake-up and about one timer per timeout
period. :func:`install_lean_writers` puts it into ``AsyncSocket``'s class, once per process
(changing the class of each socket instead costs CPython's attribute caches on it: lookups 4x
slower, more than the wait saves). A socket that is not on a websocket, or whose queue is not
a :class:`SendQueue` (a long-polling client; another application's Engine.IO server in the
process), goes through Engine.IO's own ``poll``.
"""

from __future__ import annotations

from typing import Any

from engineio import exceptions
from engineio.async_socket import AsyncSocket

from server.realtime.send_queue import SendQueue

#: Engine.IO's own ``poll``, for every socket :func:`lean_poll` does not serve.
ENGINEIO_POLL = AsyncSocket.poll


async def lean_poll(socket: AsyncSocket) -> list[Any]:
    """What Engine.IO's ``poll`` returns: the queued packets, at least one (waiting up to
    ``ping_interval + ping_timeout`` for the first); ``[]`` at the end marker;
    :class:`engineio.exceptions.QueueEmpty` when none came (the writer then closes the
    websocket, as with Engine.IO's own).

    A cancellation propagates. Engine.IO's own ``poll`` turns it into ``QueueEmpty`` (its
    ``wait_for`` could raise it for the ``get`` it wrapped); here only the cancellation of
    the writer task itself can reach this wait, and turning that into ``QueueEmpty`` would
    have the cancelled writer go on to close the websocket and end as if it had not been
    cancelled (a shutdown cancelling it would wait for that close)."""
    queue = socket.queue
    if not socket.upgraded or not isinstance(queue, SendQueue):
        packets: list[Any] = await ENGINEIO_POLL(socket)
        return packets
    server = socket.server
    try:
        first = await queue.get_within(server.ping_interval + server.ping_timeout)
    except TimeoutError:
        raise exceptions.QueueEmpty() from None
    queue.task_done()
    if first is None:
        return []
    packets = [first]
    while not queue.empty():
        packet = queue.get_nowait()
        queue.task_done()
        if packet is None:  # left for the next poll, which ends the writer
            queue.put_nowait(None)
            break
        packets.append(packet)
    return packets


def install_lean_writers() -> None:
    """Make :func:`lean_poll` the ``poll`` of Engine.IO's sockets (once per process)."""
    AsyncSocket.poll = lean_poll


__all__ = ["ENGINEIO_POLL", "install_lean_writers", "lean_poll"]
