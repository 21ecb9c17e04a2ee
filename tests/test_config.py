"""Configuration from the environment: defaults, parsing, one-line errors naming the variable."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from server.config import Settings, load_settings
from server.errors import ConfigError
from tests.support.processes import free_port

SECRET = "s" * 32


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def supervision_and_limits(settings: Settings) -> tuple[float, float, int, int, int, str]:
    """HEARTBEAT_TIMEOUT_S, SUPERVISOR_INTERVAL_S, MAX_RECOVERY_ATTEMPTS, BACKLOG_SIZE,
    MAX_CHECKPOINT_BYTES and REDIS_CHANNEL as read."""
    return (
        settings.heartbeat_timeout_s,
        settings.supervisor_interval_s,
        settings.max_recovery_attempts,
        settings.backlog_size,
        settings.max_checkpoint_bytes,
        settings.redis_channel,
    )


def test_defaults_follow_the_contract() -> None:
    settings = load_settings({"JWT_SECRET": SECRET})
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.database_url is None
    assert settings.redis_url is None
    assert settings.jwt.algorithm == "HS256"
    assert settings.jwt.key == SECRET
    assert settings.jwt.audience is None
    assert settings.jwt.issuer is None
    assert supervision_and_limits(settings) == (30, 10, 3, 200, 1_048_576, "jobspine")
    assert settings.max_message_bytes >= settings.max_checkpoint_bytes + 64 * 1024


def test_every_variable_is_read() -> None:
    settings = load_settings(
        {
            "HOST": "0.0.0.0",
            "PORT": "9000",
            "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/jobspine",
            "REDIS_URL": "redis://127.0.0.1:6379/0",
            "JWT_SECRET": SECRET,
            "JWT_AUDIENCE": "jobspine",
            "JWT_ISSUER": "https://issuer.example",
            "HEARTBEAT_TIMEOUT_S": "0.5",
            "SUPERVISOR_INTERVAL_S": "0.2",
            "MAX_RECOVERY_ATTEMPTS": "0",
            "BACKLOG_SIZE": "5",
            "MAX_CHECKPOINT_BYTES": "1024",
            "REDIS_CHANNEL": "staging",
        }
    )
    assert (settings.host, settings.port) == ("0.0.0.0", 9000)
    assert settings.database_url == "postgresql://postgres@127.0.0.1:5432/jobspine"
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert (settings.jwt.audience, settings.jwt.issuer) == ("jobspine", "https://issuer.example")
    assert supervision_and_limits(settings) == (0.5, 0.2, 0, 5, 1024, "staging")


def test_empty_values_take_the_default() -> None:
    assert load_settings({"JWT_SECRET": SECRET, "PORT": "", "HOST": " "}).port == 8080


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("PORT", "abc", "PORT: expected an integer from 1 to 65535, got 'abc'"),
        ("PORT", "0", "PORT: expected an integer from 1 to 65535, got '0'"),
        ("PORT", "65536", "PORT: expected an integer from 1 to 65535, got '65536'"),
        ("PORT", "80.5", "PORT: expected an integer from 1 to 65535, got '80.5'"),
        ("HEARTBEAT_TIMEOUT_S", "soon", "HEARTBEAT_TIMEOUT_S: expected a finite number"),
        ("HEARTBEAT_TIMEOUT_S", "0", "HEARTBEAT_TIMEOUT_S: expected a finite number"),
        ("HEARTBEAT_TIMEOUT_S", "-1", "HEARTBEAT_TIMEOUT_S: expected a finite number"),
        ("SUPERVISOR_INTERVAL_S", "nan", "SUPERVISOR_INTERVAL_S: expected a finite number"),
        ("SUPERVISOR_INTERVAL_S", "inf", "SUPERVISOR_INTERVAL_S: expected a finite number"),
        ("MAX_RECOVERY_ATTEMPTS", "-1", "MAX_RECOVERY_ATTEMPTS: expected an integer"),
        ("MAX_RECOVERY_ATTEMPTS", "three", "MAX_RECOVERY_ATTEMPTS: expected an integer"),
        ("BACKLOG_SIZE", "0", "BACKLOG_SIZE: expected an integer"),
        ("BACKLOG_SIZE", "1e3", "BACKLOG_SIZE: expected an integer"),
        ("MAX_CHECKPOINT_BYTES", "0", "MAX_CHECKPOINT_BYTES: expected an integer"),
        ("MAX_CHECKPOINT_BYTES", "1MB", "MAX_CHECKPOINT_BYTES: expected an integer"),
        ("DATABASE_URL", "mysql://x", "DATABASE_URL: expected a URL starting with postgresql://"),
        ("REDIS_URL", "http://x", "REDIS_URL: expected a URL starting with redis://"),
        ("JWT_SECRET", "short", "JWT_SECRET: expected at least 32 bytes, got 5"),
        ("JWT_ALGORITHM", "none", "JWT_ALGORITHM: expected HS256 with JWT_SECRET"),
        ("JWT_ALGORITHM", "RS256", "JWT_ALGORITHM: expected HS256 with JWT_SECRET"),
    ],
)
def test_a_bad_value_names_its_variable_in_one_line(
    variable: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings({"JWT_SECRET": SECRET, variable: value})
    text = str(raised.value)
    assert text.startswith(message)
    assert text.startswith(f"{variable}: ")
    assert "\n" not in text


def test_a_database_url_with_a_password_is_not_echoed() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings({"JWT_SECRET": SECRET, "DATABASE_URL": "mysql://u:hunter2@db/x"})
    assert "hunter2" not in str(raised.value)


def test_durations_accept_fractions() -> None:
    settings = load_settings({"JWT_SECRET": SECRET, "SUPERVISOR_INTERVAL_S": "0.2"})
    assert settings.supervisor_interval_s == pytest.approx(0.2)


def test_there_is_no_built_in_secret() -> None:
    with pytest.raises(ConfigError, match=r"^JWT_SECRET: required"):
        load_settings({})


def test_dev_mode_generates_a_secret_unless_one_is_set() -> None:
    generated = load_settings({}, dev=True).jwt
    assert generated.generated
    assert len(generated.key.encode()) >= 32
    assert load_settings({}, dev=True).jwt.key != generated.key
    assert load_settings({"JWT_SECRET": SECRET}, dev=True).jwt.key == SECRET


def test_a_secret_is_not_in_the_settings_repr() -> None:
    assert SECRET not in repr(load_settings({"JWT_SECRET": SECRET}))


def test_public_keys_select_rs256_or_es256() -> None:
    rsa_pem = _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    ec_pem = _pem(ec.generate_private_key(ec.SECP256R1()))
    assert load_settings({"JWT_PUBLIC_KEY": rsa_pem}).jwt.algorithm == "RS256"
    escaped = rsa_pem.replace("\n", "\\n")
    assert load_settings({"JWT_PUBLIC_KEY": escaped}).jwt.key.strip() == rsa_pem.strip()
    es = load_settings({"JWT_PUBLIC_KEY": ec_pem, "JWT_ALGORITHM": "ES256"}).jwt
    assert es.algorithm == "ES256"
    assert not es.can_mint
    with pytest.raises(ConfigError, match=r"^JWT_PUBLIC_KEY: expected a P-256 EC public key"):
        load_settings({"JWT_PUBLIC_KEY": rsa_pem, "JWT_ALGORITHM": "ES256"})
    with pytest.raises(ConfigError, match=r"^JWT_PUBLIC_KEY: expected an RSA public key"):
        load_settings({"JWT_PUBLIC_KEY": ec_pem})
    with pytest.raises(ConfigError, match=r"^JWT_PUBLIC_KEY: expected a PEM-encoded"):
        load_settings({"JWT_PUBLIC_KEY": "not a key"})
    with pytest.raises(ConfigError, match=r"^JWT_ALGORITHM: expected RS256 or ES256"):
        load_settings({"JWT_PUBLIC_KEY": rsa_pem, "JWT_ALGORITHM": "HS256"})
    with pytest.raises(ConfigError, match=r"^JWT_PUBLIC_KEY: set either"):
        load_settings({"JWT_PUBLIC_KEY": rsa_pem, "JWT_SECRET": SECRET})


def test_the_process_stops_with_one_line_and_status_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "server"],
        env={"PATH": "", "PORT": "abc", "JWT_SECRET": SECRET},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr == "jobspine: PORT: expected an integer from 1 to 65535, got 'abc'\n"
    assert result.stdout == ""


async def test_the_dev_server_prints_tokens_serves_and_stops_on_sigterm() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JWT_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server",
        "--dev",
        "--port",
        str(port),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    try:
        stderr_lines: list[str] = []
        while not any("listening on" in line for line in stderr_lines):
            line = await asyncio.wait_for(process.stderr.readline(), 30)
            assert line, f"the server ended early: {stderr_lines}"
            stderr_lines.append(line.decode())
        banner_lines: list[str] = []
        while len(banner_lines) < 7:
            banner_lines.append((await asyncio.wait_for(process.stdout.readline(), 5)).decode())
        tokens = {
            parts[0]: parts[2]
            for parts in (line.split() for line in banner_lines)
            if len(parts) == 3 and parts[1].startswith("(")
        }
        assert set(tokens) == {"u1", "u2", "admin", "worker-1"}

        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{port}"
            async with http.get(f"{url}/healthz") as response:
                assert response.status == 200
            headers = {"Authorization": f"Bearer {tokens['u1']}"}
            async with http.post(f"{url}/api/jobs", json={"type": "t"}, headers=headers) as r:
                assert r.status == 201
            async with http.get(f"{url}/api/jobs", headers={"Authorization": "Bearer x"}) as r:
                assert r.status == 401

        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 15) == 0
        rest = (await process.stderr.read()).decode().splitlines()
        assert any("stopped" in line for line in rest)
        records = [*stderr_lines, *rest]
        assert all(line.split(" ", 2)[1][:2].isdigit() for line in records if line.strip())
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
