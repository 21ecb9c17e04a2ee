"""Authentication: JWT verification, refused socket connections with ``{code, message}``,
REST bearer tokens, roles, token expiry during a connection, and the token tools."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from server.actors import Actor, Role
from server.auth import TokenVerifier, mint_token
from server.config import load_settings
from server.devmode import DEV_ACCOUNTS, REAL_SECRET_TOKEN_TTL_S, banner, dev_tokens
from server.errors import ConfigError, Unauthorized
from tests.support.server import (
    TEST_SECRET,
    StartServer,
    connect_user,
    connect_worker,
    refusal,
)

ROOT = Path(__file__).resolve().parent.parent
OTHER_SECRET = "another-secret-of-at-least-32-bytes-long"


def _verifier(**env: str) -> TokenVerifier:
    return TokenVerifier(load_settings({"JWT_SECRET": TEST_SECRET, **env}).jwt)


def _claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {"sub": "u1", "exp": int(time.time()) + 600}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(claims: dict[str, Any], key: str = TEST_SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


def _unsigned(claims: dict[str, Any]) -> str:
    """An ``alg: none`` token: a header, the claims, and no signature."""
    return jwt.encode(claims, "", algorithm="none")


# -- the verifier -----------------------------------------------------------------------------


def test_a_valid_token_names_the_actor() -> None:
    identity = _verifier().verify(_sign(_claims(role="admin")))
    assert identity.actor == Actor(id="u1", role=Role.ADMIN)
    assert not identity.is_expired()
    assert _verifier().verify(_sign(_claims())).actor.role is Role.USER


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (None, "a token is required"),
        ("", "a token is required"),
        (42, "a token is required"),
        ("not.a.jwt", "the token is malformed"),
        (_sign(_claims(), key=OTHER_SECRET), "the token's signature is invalid"),
        (_sign(_claims(exp=int(time.time()) - 60)), "the token has expired"),
        (
            # Far enough ahead to stay early while the rest of the session runs first (the
            # token is made at collection time).
            _sign(_claims(iat=int(time.time()) + 3600, exp=int(time.time()) + 7200)),
            "the token is not valid yet: its iat or nbf is later than now plus "
            "the allowed clock skew of 30 s",
        ),
        (_unsigned(_claims()), "the token's algorithm is not accepted"),
        (
            _sign(_claims(), key=TEST_SECRET * 2, algorithm="HS512"),
            "the token's algorithm is not accepted",
        ),
        (_sign(_claims(sub=None)), "the token lacks the 'sub' claim"),
        (_sign(_claims(exp=None)), "the token lacks the 'exp' claim"),
        (_sign(_claims(sub="")), "the token's 'sub' must be 1 to 256 characters"),
        (_sign(_claims(role="root")), "the token's 'role' must be user, admin or worker"),
        (_sign(_claims(role=["admin"])), "the token's 'role' must be user, admin or worker"),
    ],
)
def test_bad_tokens_are_unauthorized(token: object, message: str) -> None:
    with pytest.raises(Unauthorized) as raised:
        _verifier().verify(token)
    assert raised.value.message == message


def test_clock_skew_within_the_leeway_is_accepted() -> None:
    """JWT_LEEWAY_S (30 s): an ``iat`` or ``nbf`` a little ahead and an ``exp`` a little past
    still verify; the socket's session then ends at ``exp`` plus the leeway."""
    now = int(time.time())
    ahead = _verifier().verify(_sign(_claims(iat=now + 25, nbf=now + 25)))
    assert ahead.actor.id == "u1"
    late = _verifier().verify(_sign(_claims(exp=now - 10)))
    assert late.session_ends_at == now - 10 + 30
    assert not late.is_expired(now)
    assert late.is_expired(now + 21)


def test_audience_and_issuer_are_checked_when_configured() -> None:
    verifier = _verifier(JWT_AUDIENCE="jobspine", JWT_ISSUER="auth.example")
    good = _claims(aud="jobspine", iss="auth.example")
    assert verifier.verify(_sign(good)).actor.id == "u1"
    for claims, message in [
        ({**good, "aud": "other"}, "the token is not meant for this audience"),
        ({**good, "iss": "evil.example"}, "the token's issuer is not accepted"),
        (_claims(iss="auth.example"), "the token lacks the 'aud' claim"),
        (_claims(aud="jobspine"), "the token lacks the 'iss' claim"),
    ]:
        with pytest.raises(Unauthorized) as raised:
            verifier.verify(_sign(claims))
        assert raised.value.message == message
    # Not configured: not checked.
    assert _verifier().verify(_sign(_claims(aud="anything"))).actor.id == "u1"


def test_rs256_public_keys_verify_and_refuse_key_confusion() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    verifier = TokenVerifier(load_settings({"JWT_PUBLIC_KEY": public_pem}).jwt)
    token = mint_token(private_pem, sub="w1", role="worker", algorithm="RS256")
    assert verifier.verify(token).actor == Actor(id="w1", role=Role.WORKER)
    with pytest.raises(Unauthorized):
        verifier.verify(_sign(_claims(), key=TEST_SECRET))


# -- Socket.IO connections --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        (None, "a token is required"),
        ({}, "a token is required"),
        ({"token": 7}, "a token is required"),
        ({"token": "garbage"}, "the token is malformed"),
        ({"token": _sign(_claims(), key=OTHER_SECRET)}, "the token's signature is invalid"),
        ({"token": _sign(_claims(exp=int(time.time()) - 60))}, "the token has expired"),
        ({"token": _unsigned(_claims())}, "the token's algorithm is not accepted"),
    ],
)
@pytest.mark.parametrize("namespace", ["/", "/workers"])
async def test_refused_connections_get_unauthorized_data(
    start_server: StartServer, namespace: str, auth: Any, message: str
) -> None:
    server = await start_server()
    data = await refusal(server, namespace, auth)
    assert data == {"code": "unauthorized", "message": message}


async def test_a_wrong_audience_is_refused_when_configured(start_server: StartServer) -> None:
    server = await start_server({"JWT_AUDIENCE": "jobspine"})
    wrong = _sign(_claims(aud="someone-else"))
    assert await refusal(server, "/", {"token": wrong}) == {
        "code": "unauthorized",
        "message": "the token is not meant for this audience",
    }
    client = await connect_user(server, token=_sign(_claims(aud="jobspine")))
    assert client.connected


@pytest.mark.parametrize(
    ("namespace", "role", "message"),
    [
        ("/workers", "user", "this needs a token of role worker, not user"),
        ("/workers", "admin", "this needs a token of role worker, not admin"),
        ("/", "worker", "this needs a token of role user or admin, not worker"),
    ],
)
async def test_a_valid_token_of_the_wrong_role_is_forbidden(
    start_server: StartServer, namespace: str, role: str, message: str
) -> None:
    server = await start_server()
    data = await refusal(server, namespace, {"token": server.token("someone", role)})
    assert data == {"code": "forbidden", "message": message}


async def test_the_right_roles_connect(start_server: StartServer) -> None:
    server = await start_server()
    assert (await connect_user(server, "u1")).connected
    assert (await connect_user(server, "root", role="admin")).connected
    assert (await connect_worker(server, "worker-1")).connected


async def test_calls_after_the_token_expired_are_unauthorized(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = await start_server()
    user = await connect_user(server, "u1")
    worker = await connect_worker(server)
    await user.ok("job:create", {"type": "t"})
    later = time.time() + 2 * 3600
    monkeypatch.setattr("server.auth.time.time", lambda: later)
    error = await user.refused("job:create", {"type": "t"}, code="unauthorized")
    assert "expired" in error["message"]
    await worker.refused("claim", {}, code="unauthorized")


async def test_a_client_event_named_connect_is_refused(start_server: StartServer) -> None:
    server = await start_server()
    user = await connect_user(server, "u1")
    other = server.token("intruder", "admin")
    await user.refused("connect", {"token": other}, code="bad_request")
    await user.refused("disconnect", {}, code="bad_request")
    assert user.connected
    ack = await user.ok("job:create", {"type": "t"})
    assert ack["job"]["user_id"] == "u1"


# -- REST ------------------------------------------------------------------------------------


async def test_rest_needs_a_bearer_token_of_a_user_or_admin(start_server: StartServer) -> None:
    server = await start_server()
    for headers in [{}, {"Authorization": "Basic dTE6cHc="}, {"Authorization": "Bearer "}]:
        status, body = await server.rest("GET", "/api/jobs", headers=headers)
        assert status == 401, body
        assert body["error"]["code"] == "unauthorized", body
    status, body = await server.rest("GET", "/api/jobs", token="nope")
    assert (status, body["error"]) == (
        401,
        {"code": "unauthorized", "message": "the token is malformed"},
    )
    expired = server.token("u1", ttl=-60)
    status, body = await server.rest("GET", "/api/jobs", token=expired)
    assert status == 401
    assert body["error"]["message"] == "the token has expired"
    status, body = await server.rest("GET", "/api/jobs", token=server.token("w", "worker"))
    assert status == 403
    assert body["error"]["code"] == "forbidden"
    status, body = await server.rest("GET", "/api/jobs", token=server.token("u1"))
    assert status == 200
    assert body == {"items": [], "next_cursor": None}


# -- tools -----------------------------------------------------------------------------------


def _mint(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "mint_token.py"), *args],
        env={**os.environ, **(env or {})} if env is not None else None,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_mint_token_script() -> None:
    result = _mint("--secret", TEST_SECRET, "--sub", "u1", "--role", "admin", "--ttl", "60")
    assert result.returncode == 0, result.stderr
    identity = _verifier().verify(result.stdout.strip())
    assert identity.actor == Actor(id="u1", role=Role.ADMIN)
    assert identity.expires_at - time.time() == pytest.approx(60, abs=5)

    from_env = _mint("--sub", "worker-9", "--role", "worker", env={"JWT_SECRET": TEST_SECRET})
    assert from_env.returncode == 0, from_env.stderr
    assert _verifier().verify(from_env.stdout.strip()).actor.role is Role.WORKER

    too_short = _mint("--secret", "short", "--sub", "u1")
    assert too_short.returncode == 2
    assert "32 bytes" in too_short.stderr


def test_dev_mode_prints_working_tokens_for_every_role() -> None:
    settings = load_settings({}, dev=True)
    tokens = dev_tokens(settings)
    verifier = TokenVerifier(settings.jwt)
    assert {sub: verifier.verify(tokens[sub]).actor.role for sub, _ in DEV_ACCOUNTS} == {
        "u1": Role.USER,
        "u2": Role.USER,
        "admin": Role.ADMIN,
        "worker-1": Role.WORKER,
    }
    assert verifier.verify(tokens["u1"]).expires_at - time.time() == pytest.approx(86400, abs=60)
    text = banner(settings)
    assert all(token in text for token in tokens.values())
    assert "curl" in text
    assert "auth: {token" in text


def test_dev_mode_with_a_real_secret_prints_short_lived_tokens() -> None:
    settings = load_settings({"JWT_SECRET": TEST_SECRET}, dev=True)
    tokens = dev_tokens(settings)
    verifier = TokenVerifier(settings.jwt)
    lifetime = verifier.verify(tokens["admin"]).expires_at - time.time()
    assert lifetime == pytest.approx(REAL_SECRET_TOKEN_TTL_S, abs=60)
    assert "valid 10 min only" in banner(settings)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.com"])
def test_dev_mode_refuses_a_non_loopback_host(host: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings({"HOST": host}, dev=True)
    assert str(raised.value).startswith("HOST: --dev serves only a loopback address")
    assert load_settings({"HOST": host, "JWT_SECRET": TEST_SECRET}).host == host


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_dev_mode_serves_loopback_hosts(host: str) -> None:
    assert load_settings({"HOST": host}, dev=True).host == host


def test_python_m_server_dev_on_a_public_host_exits_with_one_line() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JWT_", "HOST"))}
    done = subprocess.run(
        [sys.executable, "-m", "server", "--dev", "--host", "0.0.0.0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "jobspine: HOST: --dev serves only a loopback address (127.0.0.1, ::1, localhost), "
        "got '0.0.0.0'; drop --dev to listen on 0.0.0.0"
    ]
