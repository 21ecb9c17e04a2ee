"""Settings of the web process, read once from the environment and validated (each kind of
value by its parser in :mod:`server.env_values`).

Every bad value raises :class:`server.errors.ConfigError` with one line that names the
variable, e.g. ``PORT: expected an integer from 1 to 65535, got 'abc'``. A variable that is
unset or empty takes its default.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import secrets
from collections.abc import Mapping

import attrs
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from server.env_values import (
    Env,
    choice,
    duration,
    duration_or_off,
    integer,
    leeway,
    origins,
    per_second,
    rate,
    refuse,
    switch,
    text,
    url,
)
from server.errors import ConfigError
from server.realtime.redis_signing import derive_signing_key

#: HS256 secrets shorter than this are refused (RFC 7518 §3.2: at least the hash size).
MIN_SECRET_BYTES = 32
#: Checkpoints larger than this are refused by configuration: a typo guard.
MAX_CHECKPOINT_LIMIT = 1 << 30
#: Room for a checkpoint call's other fields and the Socket.IO framing.
TRANSPORT_OVERHEAD_BYTES = 64 * 1024
#: A client that escapes non-ASCII text (``\\uXXXX``, as Python's ``json.dumps`` does by
#: default) sends up to 3 characters per byte of the compact UTF-8 encoding the limit counts.
ESCAPING_FACTOR = 3

ASYMMETRIC_ALGORITHMS = ("RS256", "ES256")


@attrs.frozen(kw_only=True)
class JwtSettings:
    """How tokens are verified: one algorithm and its key, plus optional aud/iss checks."""

    algorithm: str
    key: str = attrs.field(repr=False)
    audience: str | None = None
    issuer: str | None = None
    #: True when the secret was generated for this process (``--dev``).
    generated: bool = False
    #: ``JWT_LEEWAY_S``: clock skew allowed on ``exp``, ``nbf`` and ``iat``.
    leeway_s: float = 30.0

    @property
    def can_mint(self) -> bool:
        """Whether this process holds the signing key (HS256's secret is both)."""
        return self.algorithm == "HS256"


@attrs.frozen(kw_only=True)
class LimitSettings:
    """The contract's "Limits, sessions and abuse" bounds (docs/security.md)."""

    #: ``USER_CALLS_PER_S``: REST requests and ``/`` events of one user per second (bursts 2x).
    user_calls_per_s: float = 50.0
    #: ``WORKER_CALLS_PER_S``: ``/workers`` calls of one worker ``sub`` per second (bursts 2x).
    worker_calls_per_s: float = 1000.0
    #: ``MAX_ACTIVE_JOBS_PER_USER``: jobs of one user in created, running or paused.
    max_active_jobs_per_user: int = 1000
    #: ``MAX_SOCKETS_PER_USER``: Socket.IO connections of one ``sub`` at once.
    max_sockets_per_user: int = 20
    #: ``MAX_SUBSCRIPTIONS_PER_SOCKET``: job rooms one socket may be in.
    max_subscriptions_per_socket: int = 1000
    #: ``MAX_INPUT_BYTES``: compact UTF-8 JSON size of a job's input or result.
    max_input_bytes: int = 262_144
    #: ``MAX_CLIENT_QUEUE_BYTES``: bytes queued for one client before it is dropped.
    max_client_queue_bytes: int = 16_777_216
    #: Calls of one socket being handled at once; a further one is ``rate_limited``.
    max_calls_in_flight_per_socket: int = 32

    @property
    def burst_factor(self) -> float:
        """Bursts of twice the rate, as the contract says."""
        return 2.0


@attrs.frozen(kw_only=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    database_url: str | None = attrs.field(default=None, repr=False)
    redis_url: str | None = attrs.field(default=None, repr=False)
    jwt: JwtSettings
    heartbeat_timeout_s: float = 30.0
    supervisor_interval_s: float = 10.0
    max_recovery_attempts: int = 3
    backlog_size: int = 200
    max_checkpoint_bytes: int = 1_048_576
    redis_channel: str = "jobspine"
    #: ``REDIS_SIGNING_KEY`` first (signs and checks), then ``REDIS_SIGNING_KEY_PREVIOUS``
    #: (checks only, while keys rotate); empty without ``REDIS_URL``.
    redis_signing_keys: tuple[bytes, ...] = attrs.field(default=(), repr=False)
    #: Packets queued for one client before it is dropped as one that stopped reading.
    max_client_queue: int = 5000
    #: Live ``job:progress`` events per job and second; 0 for no limit.
    progress_events_per_s: float = 10.0
    limits: LimitSettings = attrs.field(factory=LimitSettings)
    #: ``CORS_ORIGINS``: origins allowed for REST and Socket.IO (``*``: any); never credentials.
    cors_origins: tuple[str, ...] = ("*",)
    #: Logging (docs/operations.md): ``LOG_FORMAT``, ``LOG_LEVEL``, ``ACCESS_LOG``.
    log_format: str = "text"
    log_level: str = "INFO"
    access_log: bool = True
    #: ``METRICS_PORT``: serve ``/metrics`` on a port of its own too (``METRICS_HOST``).
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    #: Contract v2: ``IDEMPOTENCY_TTL_S``, ``MAX_RUNNING_PER_USER`` (0: no cap),
    #: ``RETENTION_S`` (0: keep final jobs forever).
    idempotency_ttl_s: float = 86400.0
    max_running_per_user: int = 0
    retention_s: float = 0.0
    #: ``EVENT_LOOP``: ``auto`` (uvloop when installed), ``asyncio`` or ``uvloop``.
    event_loop: str = "auto"
    dev: bool = False

    @property
    def max_message_bytes(self) -> int:
        """The largest Socket.IO message or HTTP body accepted.

        The contract asks for at least ``MAX_CHECKPOINT_BYTES`` + 64 KiB so that an oversize
        checkpoint is refused with an ack rather than a dropped connection. Clients that escape
        non-ASCII characters send up to three characters per counted byte, so the limit leaves
        room for that too.
        """
        return ESCAPING_FACTOR * self.max_checkpoint_bytes + TRANSPORT_OVERHEAD_BYTES


def _limits(env: Env) -> LimitSettings:
    return LimitSettings(
        user_calls_per_s=env.get("USER_CALLS_PER_S", 50.0, per_second),
        worker_calls_per_s=env.get("WORKER_CALLS_PER_S", 1000.0, per_second),
        max_active_jobs_per_user=env.get("MAX_ACTIVE_JOBS_PER_USER", 1000, integer(1, 100_000_000)),
        max_sockets_per_user=env.get("MAX_SOCKETS_PER_USER", 20, integer(1, 1_000_000)),
        max_subscriptions_per_socket=env.get(
            "MAX_SUBSCRIPTIONS_PER_SOCKET", 1000, integer(1, 1_000_000)
        ),
        max_input_bytes=env.get("MAX_INPUT_BYTES", 262_144, integer(2, MAX_CHECKPOINT_LIMIT)),
        max_client_queue_bytes=env.get(
            "MAX_CLIENT_QUEUE_BYTES", 16_777_216, integer(65_536, 1 << 40)
        ),
    )


def _event_loop(name: str, value: str) -> str:
    picked = choice("auto", "asyncio", "uvloop")(name, value)
    if picked == "uvloop" and importlib.util.find_spec("uvloop") is None:
        raise ConfigError(f"{name}: uvloop is not installed (pip install 'jobspine[fast]')")
    return picked


def _public_key(algorithm: str, pem: str) -> str:
    # Environments often carry PEM blocks with escaped newlines.
    if "\n" not in pem and "\\n" in pem:
        pem = pem.replace("\\n", "\n")
    try:
        key = load_pem_public_key(pem.encode())
    except (ValueError, TypeError):
        raise ConfigError("JWT_PUBLIC_KEY: expected a PEM-encoded public key") from None
    if algorithm == "RS256" and not isinstance(key, rsa.RSAPublicKey):
        raise ConfigError("JWT_PUBLIC_KEY: expected an RSA public key for RS256")
    if algorithm == "ES256" and not (
        isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)
    ):
        raise ConfigError("JWT_PUBLIC_KEY: expected a P-256 EC public key for ES256")
    return pem


def _jwt(env: Env, *, dev: bool) -> JwtSettings:
    secret, public_key = env.raw("JWT_SECRET"), env.raw("JWT_PUBLIC_KEY")
    requested = env.raw("JWT_ALGORITHM")
    audience, issuer = env.raw("JWT_AUDIENCE"), env.raw("JWT_ISSUER")
    leeway_s = env.get("JWT_LEEWAY_S", 30.0, leeway)
    if secret is not None and public_key is not None:
        raise ConfigError("JWT_PUBLIC_KEY: set either JWT_SECRET or JWT_PUBLIC_KEY, not both")
    if public_key is not None:
        algorithm = requested or "RS256"
        if algorithm not in ASYMMETRIC_ALGORITHMS:
            raise refuse("JWT_ALGORITHM", "RS256 or ES256 with JWT_PUBLIC_KEY", algorithm)
        return JwtSettings(
            algorithm=algorithm,
            key=_public_key(algorithm, public_key),
            audience=audience,
            issuer=issuer,
            leeway_s=leeway_s,
        )
    if requested is not None and requested != "HS256":
        expected = "HS256 with JWT_SECRET (RS256 and ES256 need JWT_PUBLIC_KEY)"
        raise refuse("JWT_ALGORITHM", expected, requested)
    generated = False
    if secret is None:
        if not dev:
            raise ConfigError(
                "JWT_SECRET: required (an HS256 secret of at least 32 bytes), "
                "or set JWT_PUBLIC_KEY, or start with --dev"
            )
        secret, generated = secrets.token_urlsafe(48), True
    elif len(secret.encode()) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"JWT_SECRET: expected at least {MIN_SECRET_BYTES} bytes, got {len(secret.encode())}"
        )
    return JwtSettings(
        algorithm="HS256",
        key=secret,
        audience=audience,
        issuer=issuer,
        generated=generated,
        leeway_s=leeway_s,
    )


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (``--dev`` must not listen further)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def load_settings(environ: Mapping[str, str], *, dev: bool = False) -> Settings:
    """Build and validate the settings; ``dev`` generates a secret when none is configured."""
    env = Env(environ)
    settings = Settings(
        host=env.get("HOST", "127.0.0.1", text),
        port=env.get("PORT", 8080, integer(1, 65535)),
        database_url=env.get("DATABASE_URL", None, url("postgresql", "postgres")),
        redis_url=env.get("REDIS_URL", None, url("redis", "rediss", "unix")),
        jwt=_jwt(env, dev=dev),
        heartbeat_timeout_s=env.get("HEARTBEAT_TIMEOUT_S", 30.0, duration),
        supervisor_interval_s=env.get("SUPERVISOR_INTERVAL_S", 10.0, duration),
        max_recovery_attempts=env.get("MAX_RECOVERY_ATTEMPTS", 3, integer(0, 1000)),
        backlog_size=env.get("BACKLOG_SIZE", 200, integer(1, 1_000_000)),
        max_checkpoint_bytes=env.get(
            "MAX_CHECKPOINT_BYTES", 1_048_576, integer(1, MAX_CHECKPOINT_LIMIT)
        ),
        redis_channel=env.get("REDIS_CHANNEL", "jobspine", text),
        max_client_queue=env.get("MAX_CLIENT_QUEUE", 5000, integer(16, 10_000_000)),
        progress_events_per_s=env.get("PROGRESS_EVENTS_PER_S", 10.0, rate),
        limits=_limits(env),
        cors_origins=env.get("CORS_ORIGINS", ("*",), origins),
        log_format=env.get("LOG_FORMAT", "text", choice("text", "json")),
        log_level=env.get(
            "LOG_LEVEL", "INFO", choice("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
        ),
        access_log=env.get("ACCESS_LOG", True, switch),
        metrics_port=env.get("METRICS_PORT", None, integer(1, 65535)),
        metrics_host=env.get("METRICS_HOST", "127.0.0.1", text),
        idempotency_ttl_s=env.get("IDEMPOTENCY_TTL_S", 86400.0, duration),
        max_running_per_user=env.get("MAX_RUNNING_PER_USER", 0, integer(0, 1_000_000)),
        retention_s=env.get("RETENTION_S", 0.0, duration_or_off),
        event_loop=env.get("EVENT_LOOP", "auto", _event_loop),
        dev=dev,
    )
    if dev and not is_loopback(settings.host):
        raise ConfigError(
            f"HOST: --dev serves only a loopback address (127.0.0.1, ::1, localhost), "
            f"got {settings.host!r}; drop --dev to listen on {settings.host}"
        )
    if settings.redis_url is not None and settings.database_url is None:
        # Several instances would each keep their own jobs and event streams.
        raise ConfigError(
            "REDIS_URL: needs DATABASE_URL too (instances cannot share the in-memory store)"
        )
    if settings.redis_url is not None:
        settings = attrs.evolve(settings, redis_signing_keys=_signing_keys(env, settings.jwt))
    return settings


def _signing_keys(env: Env, jwt: JwtSettings) -> tuple[bytes, ...]:
    """``REDIS_SIGNING_KEY`` (default: derived from ``JWT_SECRET``; required with
    ``JWT_PUBLIC_KEY``), then ``REDIS_SIGNING_KEY_PREVIOUS`` when set."""
    current = env.get("REDIS_SIGNING_KEY", None, _signing_key)
    if current is None:
        if jwt.algorithm != "HS256":
            raise ConfigError(
                "REDIS_SIGNING_KEY: required with JWT_PUBLIC_KEY and REDIS_URL "
                f"(a secret of at least {MIN_SECRET_BYTES} bytes shared by every instance)"
            )
        current = derive_signing_key(jwt.key)
    previous = env.get("REDIS_SIGNING_KEY_PREVIOUS", None, _signing_key)
    return (current,) if previous is None else (current, previous)


def _signing_key(name: str, value: str) -> bytes:
    if len(value.encode()) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"{name}: expected at least {MIN_SECRET_BYTES} bytes, got {len(value.encode())}"
        )
    return value.encode()


__all__ = ["JwtSettings", "LimitSettings", "Settings", "load_settings"]
