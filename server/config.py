"""Settings of the web process, read once from the environment and validated.

Every bad value raises :class:`server.errors.ConfigError` with one line that names the
variable, e.g. ``PORT: expected an integer from 1 to 65535, got 'abc'``. A variable that is
unset or empty takes its default.
"""

from __future__ import annotations

import ipaddress
import math
import secrets
from collections.abc import Callable, Mapping
from typing import TypeVar
from urllib.parse import urlsplit

import attrs
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from server.errors import ConfigError
from server.realtime.redis_signing import derive_signing_key

T = TypeVar("T")

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


class _Env:
    """Reads one variable at a time and names it in every complaint."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def raw(self, name: str) -> str | None:
        value = self._environ.get(name)
        if value is None or not value.strip():
            return None
        return value.strip()

    def get(self, name: str, default: T, parse: Callable[[str, str], T]) -> T:
        value = self.raw(name)
        return default if value is None else parse(name, value)


def _fail(name: str, expected: str, value: str) -> ConfigError:
    return ConfigError(f"{name}: expected {expected}, got {value!r}")


def _integer(low: int, high: int) -> Callable[[str, str], int]:
    expected = f"an integer from {low} to {high}"

    def parse(name: str, value: str) -> int:
        try:
            number = int(value, 10)
        except ValueError:
            raise _fail(name, expected, value) from None
        if not low <= number <= high:
            raise _fail(name, expected, value)
        return number

    return parse


def _duration(name: str, value: str) -> float:
    expected = "a finite number of seconds > 0"
    try:
        number = float(value)
    except ValueError:
        raise _fail(name, expected, value) from None
    if not math.isfinite(number) or number <= 0:
        raise _fail(name, expected, value)
    return number


def _duration_or_off(name: str, value: str) -> float:
    """A duration, or ``0`` for "off"."""
    if value.strip() in ("0", "0.0"):
        return 0.0
    return _duration(name, value)


def _url(*schemes: str) -> Callable[[str, str], str]:
    expected = "a URL starting with " + " or ".join(f"{s}://" for s in schemes)

    def parse(name: str, value: str) -> str:
        try:
            parts = urlsplit(value)
        except ValueError:
            raise _fail(name, expected, value) from None
        if parts.scheme not in schemes:
            # Do not echo the URL: it may carry a password.
            raise ConfigError(f"{name}: expected {expected}")
        return value

    return parse


def _rate(name: str, value: str) -> float:
    expected = "a finite number >= 0 (0 for no limit)"
    try:
        number = float(value)
    except ValueError:
        raise _fail(name, expected, value) from None
    if not math.isfinite(number) or number < 0:
        raise _fail(name, expected, value)
    return number


def _text(name: str, value: str) -> str:
    return value


def _per_second(name: str, value: str) -> float:
    expected = "a finite number > 0 of calls per second"
    try:
        number = float(value)
    except ValueError:
        raise _fail(name, expected, value) from None
    if not math.isfinite(number) or number <= 0:
        raise _fail(name, expected, value)
    return number


def _leeway(name: str, value: str) -> float:
    expected = "a number of seconds from 0 to 3600"
    try:
        number = float(value)
    except ValueError:
        raise _fail(name, expected, value) from None
    if not math.isfinite(number) or not 0 <= number <= 3600:
        raise _fail(name, expected, value)
    return number


def _origins(name: str, value: str) -> tuple[str, ...]:
    origins = tuple(part.strip() for part in value.split(",") if part.strip())
    for origin in origins:
        if origin == "*":
            continue
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
            raise _fail(name, "* or comma-separated origins like https://app.example", origin)
    if not origins:
        raise _fail(name, "* or comma-separated origins", value)
    return ("*",) if "*" in origins else origins


def _limits(env: _Env) -> LimitSettings:
    return LimitSettings(
        user_calls_per_s=env.get("USER_CALLS_PER_S", 50.0, _per_second),
        worker_calls_per_s=env.get("WORKER_CALLS_PER_S", 1000.0, _per_second),
        max_active_jobs_per_user=env.get(
            "MAX_ACTIVE_JOBS_PER_USER", 1000, _integer(1, 100_000_000)
        ),
        max_sockets_per_user=env.get("MAX_SOCKETS_PER_USER", 20, _integer(1, 1_000_000)),
        max_subscriptions_per_socket=env.get(
            "MAX_SUBSCRIPTIONS_PER_SOCKET", 1000, _integer(1, 1_000_000)
        ),
        max_input_bytes=env.get("MAX_INPUT_BYTES", 262_144, _integer(2, MAX_CHECKPOINT_LIMIT)),
        max_client_queue_bytes=env.get(
            "MAX_CLIENT_QUEUE_BYTES", 16_777_216, _integer(65_536, 1 << 40)
        ),
    )


def _choice(*choices: str) -> Callable[[str, str], str]:
    expected = "one of " + ", ".join(choices)

    def parse(name: str, value: str) -> str:
        for choice in choices:
            if value.lower() == choice.lower():
                return choice
        raise _fail(name, expected, value)

    return parse


def _switch(name: str, value: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise _fail(name, "1 or 0", value)


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


def _jwt(env: _Env, *, dev: bool) -> JwtSettings:
    secret, public_key = env.raw("JWT_SECRET"), env.raw("JWT_PUBLIC_KEY")
    requested = env.raw("JWT_ALGORITHM")
    audience, issuer = env.raw("JWT_AUDIENCE"), env.raw("JWT_ISSUER")
    leeway_s = env.get("JWT_LEEWAY_S", 30.0, _leeway)
    if secret is not None and public_key is not None:
        raise ConfigError("JWT_PUBLIC_KEY: set either JWT_SECRET or JWT_PUBLIC_KEY, not both")
    if public_key is not None:
        algorithm = requested or "RS256"
        if algorithm not in ASYMMETRIC_ALGORITHMS:
            raise _fail("JWT_ALGORITHM", "RS256 or ES256 with JWT_PUBLIC_KEY", algorithm)
        return JwtSettings(
            algorithm=algorithm,
            key=_public_key(algorithm, public_key),
            audience=audience,
            issuer=issuer,
            leeway_s=leeway_s,
        )
    if requested is not None and requested != "HS256":
        expected = "HS256 with JWT_SECRET (RS256 and ES256 need JWT_PUBLIC_KEY)"
        raise _fail("JWT_ALGORITHM", expected, requested)
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
    env = _Env(environ)
    settings = Settings(
        host=env.get("HOST", "127.0.0.1", _text),
        port=env.get("PORT", 8080, _integer(1, 65535)),
        database_url=env.get("DATABASE_URL", None, _url("postgresql", "postgres")),
        redis_url=env.get("REDIS_URL", None, _url("redis", "rediss", "unix")),
        jwt=_jwt(env, dev=dev),
        heartbeat_timeout_s=env.get("HEARTBEAT_TIMEOUT_S", 30.0, _duration),
        supervisor_interval_s=env.get("SUPERVISOR_INTERVAL_S", 10.0, _duration),
        max_recovery_attempts=env.get("MAX_RECOVERY_ATTEMPTS", 3, _integer(0, 1000)),
        backlog_size=env.get("BACKLOG_SIZE", 200, _integer(1, 1_000_000)),
        max_checkpoint_bytes=env.get(
            "MAX_CHECKPOINT_BYTES", 1_048_576, _integer(1, MAX_CHECKPOINT_LIMIT)
        ),
        redis_channel=env.get("REDIS_CHANNEL", "jobspine", _text),
        max_client_queue=env.get("MAX_CLIENT_QUEUE", 5000, _integer(16, 10_000_000)),
        progress_events_per_s=env.get("PROGRESS_EVENTS_PER_S", 10.0, _rate),
        limits=_limits(env),
        cors_origins=env.get("CORS_ORIGINS", ("*",), _origins),
        log_format=env.get("LOG_FORMAT", "text", _choice("text", "json")),
        log_level=env.get(
            "LOG_LEVEL", "INFO", _choice("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
        ),
        access_log=env.get("ACCESS_LOG", True, _switch),
        metrics_port=env.get("METRICS_PORT", None, _integer(1, 65535)),
        metrics_host=env.get("METRICS_HOST", "127.0.0.1", _text),
        idempotency_ttl_s=env.get("IDEMPOTENCY_TTL_S", 86400.0, _duration),
        max_running_per_user=env.get("MAX_RUNNING_PER_USER", 0, _integer(0, 1_000_000)),
        retention_s=env.get("RETENTION_S", 0.0, _duration_or_off),
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


def _signing_keys(env: _Env, jwt: JwtSettings) -> tuple[bytes, ...]:
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
