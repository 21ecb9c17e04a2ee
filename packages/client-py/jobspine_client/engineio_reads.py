"""The sessions' Engine.IO client reads each websocket message without a task of its own.

python-engineio's client reads every message with ``asyncio.wait_for(ws.receive(),
ping_interval + ping_timeout)``: on Python 3.11 a task around the read, a future and a loop
timer per message, and the message is handled two steps of the loop later (the read task's,
then its done callback's). A worker gets one message per call it makes (the ack), so that was
paid for every progress report, checkpoint and claim (docs/performance.md, "The memory store's
peer workload"). :class:`LeanEngineIOClient` reads with aiohttp's own timeout
(``receive(timeout=…)``: the same deadline, the same ``TimeoutError``), in the read loop's own
task; the rest of the loop is Engine.IO's, and so is everything else of the client
(:class:`LeanSocketIOClient` is python-socketio's client over it).
"""

from __future__ import annotations

import contextlib
from typing import Any

import aiohttp
import engineio
import socketio
from engineio import base_client, packet


class LeanEngineIOClient(engineio.AsyncClient):  # type: ignore[misc]
    """python-engineio's client, its websocket read loop without ``wait_for``."""

    async def _read_loop_websocket(self) -> None:
        """Engine.IO's websocket read loop (python-engineio 4.x), but for the read's wait."""
        while self.state == "connected" and self.write_loop_task:
            try:
                message = await self.ws.receive(timeout=self.ping_interval + self.ping_timeout)
                if not isinstance(message.data, str | bytes):
                    kind = message.type
                    closing = kind in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING)
                    self.logger.warning(
                        "Server sent %s packet data %s, aborting",
                        "close" if closing else str(kind),
                        str(message.data),
                    )
                    await self.queue.put(None)
                    break  # the connection is broken
                data: Any = message.data
            except TimeoutError:
                self.logger.warning("Server has stopped communicating, aborting")
                await self.queue.put(None)
                break
            except aiohttp.client_exceptions.ServerDisconnectedError:
                self.logger.info("Read loop: WebSocket connection was closed, aborting")
                await self.queue.put(None)
                break
            except Exception as exc:
                self.logger.info('Unexpected error receiving packet: "%s", aborting', str(exc))
                await self.queue.put(None)
                break
            try:
                pkt = packet.Packet(encoded_packet=data)
            except Exception as exc:
                self.logger.info('Unexpected error decoding packet: "%s", aborting', str(exc))
                await self.queue.put(None)
                break
            await self._receive_packet(pkt)

        if self.write_loop_task:
            self.logger.info("Waiting for write loop task to end")
            await self.write_loop_task
        if self.state == "connected":
            await self._trigger_event("disconnect", self.reason.TRANSPORT_ERROR, run_async=False)
            with contextlib.suppress(ValueError):
                base_client.connected_clients.remove(self)
            await self._reset()
        self.logger.info("Exiting read loop task")


class LeanSocketIOClient(socketio.AsyncClient):  # type: ignore[misc]
    """python-socketio's client over :class:`LeanEngineIOClient`."""

    def _engineio_client_class(self) -> type[engineio.AsyncClient]:
        return LeanEngineIOClient


__all__ = ["LeanEngineIOClient", "LeanSocketIOClient"]
