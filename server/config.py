"""Settings of the web process, read once from the environment and validated (each kind of
value by its parser in :mod:`server.env_values`).

Every bad value raises :class:`server.errors.ConfigError` with one line that names the
variable, e.g. ``PORT: expected an integer from 1 to 65535, got 'abc'``. A variable that is
unset or empty takes its default.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs
from attrs import AttrsInstance
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from jobspine_shared.event_loop import EVENT_LOOPS, uvloop_installed
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


#: The key of a field's metadata naming its variable and parser (:func:`setting`).
_VARIABLE = "jobspine.variable"
A = TypeVar("A", bound=AttrsInstance)
T = TypeVar("T")
#: Checks and converts a variable's value: ``parse(name, value)``, raising ConfigError.
Parser = Callable[[str, str], T]


def setting(variable: str, default: T, parse: Parser[T], *, repr: bool = True) -> T:
    """A field read from the environment ``variable`` by ``parse`` (:func:`_from_env`);
    unset or empty, ``default``. The one place each variable, default and check is written."""
    field: T = attrs.field(default=default, repr=repr, metadata={_VARIABLE: (variable, parse)})
    return field


def _from_env(env: Env, cls: type[A], **given: Any) -> A:
    """``cls`` with every :func:`setting` field read from its variable, and ``given``."""
    read: dict[str, Any] = {}
    for field in attrs.fields(cls):
        if _VARIABLE in field.metadata:
            variable, parse = field.metadata[_VARIABLE]
            read[field.name] = env.get(variable, field.default, parse)
    return cls(**read, **given)


def _event_loop(name: str, value: str) -> str:
    picked = choice(*EVENT_LOOPS)(name, value)
    if picked == "uvloop" and not uvloop_installed():
        raise ConfigError(f"{name}: uvloop is not installed (pip install 'jobspine[fast]')")
    return picked


@attrs.frozen(kw_only=True)
class JwtSettings:
    """How tokens are verified: one algorithm and its key, plus optional aud/iss checks."""

    algorithm: str
    key: str = attrs.field(repr=False)
    audience: str | None = setting("JWT_AUDIENCE", None, text)
    issuer: str | None = setting("JWT_ISSUER", None, text)
    #: True when the secret was generated for this process (``--dev``).
    generated: bool = False
    #: Clock skew allowed on ``exp``, ``nbf`` and ``iat``.
    leeway_s: float = setting("JWT_LEEWAY_S", 30.0, leeway)

    @property
    def can_mint(self) -> bool:
        """Whether this process holds the signing key (HS256's secret is both)."""
        return self.algorithm == "HS256"


@attrs.frozen(kw_only=True)
class LimitSettings:
    """The contract's "Limits, sessions and abuse" bounds (docs/security.md)."""

    #: REST requests and ``/`` events of one user per second (bursts 2x).
    user_calls_per_s: float = setting("USER_CALLS_PER_S", 50.0, per_second)
    #: ``/workers`` calls of one worker ``sub`` per second (bursts 2x).
    worker_calls_per_s: float = setting("WORKER_CALLS_PER_S", 1000.0, per_second)
    #: Jobs of one user in created, running or paused.
    max_active_jobs_per_user: int = setting(
        "MAX_ACTIVE_JOBS_PER_USER", 1000, integer(1, 100_000_000)
    )
    #: Socket.IO connections of one ``sub`` at once.
    max_sockets_per_user: int = setting("MAX_SOCKETS_PER_USER", 20, integer(1, 1_000_000))
    #: Job rooms one socket may be in.
    max_subscriptions_per_socket: int = setting(
        "MAX_SUBSCRIPTIONS_PER_SOCKET", 1000, integer(1, 1_000_000)
    )
    #: Compact UTF-8 JSON size of a job's input or result.
    max_input_bytes: int = setting("MAX_INPUT_BYTES", 262_144, integer(2, MAX_CHECKPOINT_LIMIT))
    #: Bytes queued for one client before it is dropped.
    max_client_queue_bytes: int = setting(
        "MAX_CLIENT_QUEUE_BYTES", 16_777_216, integer(65_536, 1 << 40)
    )
    #: Calls of one socket being handled at once; a further one is ``rate_limited``.
    max_calls_in_flight_per_socket: int = 32

    @property
    def burst_factor(self) -> float:
        """Bursts of twice the rate, as the contract says."""
        return 2.0


@attrs.frozen(kw_only=True)
class Settings:
    host: str = setting("HOST", "127.0.0.1", text)
    port: int = setting("PORT", 8080, integer(1, 65535))
    database_url: str | None = setting(
        "DATABASE_URL", None, url("postgresql", "postgres"), repr=False
    )
    redis_url: str | None = setting("REDIS_URL", None, url("redis", "rediss", "unix"), repr=False)
    jwt: JwtSettings
    heartbeat_timeout_s: float = setting("HEARTBEAT_TIMEOUT_S", 30.0, duration)
    supervisor_interval_s: float = setting("SUPERVISOR_INTERVAL_S", 10.0, duration)
    max_recovery_attempts: int = setting("MAX_RECOVERY_ATTEMPTS", 3, integer(0, 1000))
    backlog_size: int = setting("BACKLOG_SIZE", 200, integer(1, 1_000_000))
    max_checkpoint_bytes: int = setting(
        "MAX_CHECKPOINT_BYTES", 1_048_576, integer(1, MAX_CHECKPOINT_LIMIT)
    )
    redis_channel: str = setting("REDIS_CHANNEL", "jobspine", text)
    #: ``REDIS_SIGNING_KEY`` first (signs and checks), then ``REDIS_SIGNING_KEY_PREVIOUS``
    #: (checks only, while keys rotate); empty without ``REDIS_URL``.
    redis_signing_keys: tuple[bytes, ...] = attrs.field(default=(), repr=False)
    #: Packets queued for one client before it is dropped as one that stopped reading.
    max_client_queue: int = setting("MAX_CLIENT_QUEUE", 5000, integer(16, 10_000_000))
    #: Live ``job:progress`` events per job and second; 0 for no limit.
    progress_events_per_s: float = setting("PROGRESS_EVENTS_PER_S", 10.0, rate)
    limits: LimitSettings = attrs.field(factory=LimitSettings)
    #: Origins allowed for REST and Socket.IO (``*``: any); never credentials.
    cors_origins: tuple[str, ...] = setting("CORS_ORIGINS", ("*",), origins)
    #: Logging (docs/operations.md).
    log_format: str = setting("LOG_FORMAT", "text", choice("text", "json"))
    log_level: str = setting(
        "LOG_LEVEL", "INFO", choice("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
    )
    access_log: bool = setting("ACCESS_LOG", True, switch)
    #: Serve ``/metrics`` on a port of its own too (on ``METRICS_HOST``).
    metrics_port: int | None = setting("METRICS_PORT", None, integer(1, 65535))
    metrics_host: str = setting("METRICS_HOST", "127.0.0.1", text)
    #: Contract v2: how long an idempotency key names its job, running jobs per user (0: no
    #: cap), how long final jobs are kept (0: forever).
    idempotency_ttl_s: float = setting("IDEMPOTENCY_TTL_S", 86400.0, duration)
    max_running_per_user: int = setting("MAX_RUNNING_PER_USER", 0, integer(0, 1_000_000))
    retention_s: float = setting("RETENTION_S", 0.0, duration_or_off)
    #: ``auto`` (uvloop when installed), ``asyncio`` or ``uvloop``.
    event_loop: str = setting("EVENT_LOOP", "auto", _event_loop)
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
    if secret is not None and public_key is not None:
        raise ConfigError("JWT_PUBLIC_KEY: set either JWT_SECRET or JWT_PUBLIC_KEY, not both")
    if public_key is not None:
        algorithm = requested or "RS256"
        if algorithm not in ASYMMETRIC_ALGORITHMS:
            raise refuse("JWT_ALGORITHM", "RS256 or ES256 with JWT_PUBLIC_KEY", algorithm)
        return _from_env(
            env, JwtSettings, algorithm=algorithm, key=_public_key(algorithm, public_key)
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
    return _from_env(env, JwtSettings, algorithm="HS256", key=secret, generated=generated)


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
    jwt, limits = _jwt(env, dev=dev), _from_env(env, LimitSettings)
    settings = _from_env(env, Settings, jwt=jwt, limits=limits, dev=dev)
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
