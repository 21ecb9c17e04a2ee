"""Socket.IO transport: the user namespace ``/``, the worker namespace ``/workers``, and the
publisher that delivers job events to rooms."""
