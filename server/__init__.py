"""jobspine web process: aiohttp + python-socketio over the job repository."""
