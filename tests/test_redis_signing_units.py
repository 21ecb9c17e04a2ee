"""Signed Redis messages without a server: a sealed message opens only on its channel under a
known key (with the previous key during a rotation), and the signing key's settings.
``test_redis_signing.py`` sends forged and genuine messages between real instances."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from server.config import load_settings
from server.errors import ConfigError
from server.realtime.redis_signing import MAC_BYTES, MessageSigner, derive_signing_key
from tests.support.redis_apps import OTHER_SIGNING_KEY, SIGNING_KEY
from tests.support.server import TEST_SECRET


def test_a_message_opens_only_on_its_channel_under_a_known_key() -> None:
    signer = MessageSigner([b"new" * 11, b"old" * 11])
    old = MessageSigner([b"old" * 11])
    message = signer.seal("c1", "h" * 32, b'{"a":1}', b"body\nwith newline")
    assert signer.open(b"c1", message) == (b'{"a":1}', b"body\nwith newline")
    assert signer.open(b"c2", message) is None
    assert signer.open(b"c1", message[:-1] + b"X") is None
    assert signer.open(b"c1", b"short") is None
    # Rotation: messages of instances still on the previous key open; theirs don't take ours.
    assert signer.open(b"c1", old.seal("c1", "h" * 32, b"{}", b"")) == (b"{}", b"")
    assert old.open(b"c1", message) is None


@pytest.mark.parametrize("key_bytes", [1, 32, 63, 64, 65, 200])
def test_the_mac_is_hmac_sha256_of_the_channel_and_the_rest(key_bytes: int) -> None:
    key = bytes((7 * index + 1) % 256 for index in range(key_bytes))  # around the 64-byte block
    message = MessageSigner([key]).seal("room:/:job:1", "h" * 32, b'{"a":1}', b"body")
    mac, signed = message[:MAC_BYTES], message[MAC_BYTES:]
    assert mac == hmac.digest(key, b"room:/:job:1\n" + signed, hashlib.sha256)
    assert signed == b"h" * 32 + b'{"a":1}\nbody'


def test_the_signing_key_defaults_to_one_derived_from_jwt_secret() -> None:
    redis = {"DATABASE_URL": "postgresql://db/x", "REDIS_URL": "redis://127.0.0.1:6379/0"}
    derived = load_settings({"JWT_SECRET": TEST_SECRET, **redis}).redis_signing_keys
    assert derived == (derive_signing_key(TEST_SECRET),)
    assert TEST_SECRET.encode() not in derived[0]
    explicit = load_settings(
        {"JWT_SECRET": TEST_SECRET, "REDIS_SIGNING_KEY": SIGNING_KEY, **redis}
    ).redis_signing_keys
    assert explicit == (SIGNING_KEY.encode(),)
    rotating = {"REDIS_SIGNING_KEY": SIGNING_KEY, "REDIS_SIGNING_KEY_PREVIOUS": OTHER_SIGNING_KEY}
    assert load_settings({"JWT_SECRET": TEST_SECRET, **rotating, **redis}).redis_signing_keys == (
        SIGNING_KEY.encode(),
        OTHER_SIGNING_KEY.encode(),
    )
    with pytest.raises(ConfigError, match=r"^REDIS_SIGNING_KEY: expected at least 32 bytes"):
        load_settings({"JWT_SECRET": TEST_SECRET, "REDIS_SIGNING_KEY": "short", **redis})
    assert SIGNING_KEY not in repr(load_settings({"JWT_SECRET": TEST_SECRET, **redis}))


def test_a_public_key_deployment_with_redis_needs_a_signing_key() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    env = {"JWT_PUBLIC_KEY": pem, "JWT_ALGORITHM": "ES256", "DATABASE_URL": "postgresql://d/x"}
    assert load_settings(env).redis_signing_keys == ()  # no Redis, no key
    redis = {**env, "REDIS_URL": "redis://127.0.0.1:6379/0"}
    with pytest.raises(ConfigError, match=r"^REDIS_SIGNING_KEY: required with JWT_PUBLIC_KEY"):
        load_settings(redis)
    assert load_settings({**redis, "REDIS_SIGNING_KEY": SIGNING_KEY}).redis_signing_keys == (
        SIGNING_KEY.encode(),
    )
