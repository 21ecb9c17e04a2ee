"""JWT verification (and minting, for development and scripts) with PyJWT.

Only the configured algorithm is accepted, ``sub`` and ``exp`` are required, ``aud`` and
``iss`` are checked when configured. The ``role`` claim is ``user`` (the default), ``admin`` or
``worker``; anything else is refused.
"""

from __future__ import annotations

import time
from typing import Any

import attrs
import jwt

from server.actors import Actor, Role
from server.config import JwtSettings
from server.errors import Forbidden, Unauthorized
from server.validation import is_storable_text

MAX_SUBJECT_LENGTH = 256


@attrs.frozen(kw_only=True)
class Identity:
    """A verified token: who is calling, and until when the token holds."""

    actor: Actor
    expires_at: float
    #: ``JWT_LEEWAY_S``: the clock skew still accepted after ``exp``.
    leeway_s: float = 0.0

    @property
    def session_ends_at(self) -> float:
        """When a socket authenticated by this token ends: ``exp`` plus the leeway."""
        return self.expires_at + self.leeway_s

    def is_expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.session_ends_at


class TokenVerifier:
    def __init__(self, settings: JwtSettings) -> None:
        self._settings = settings

    def verify(self, token: object) -> Identity:
        """The identity a token proves; :class:`Unauthorized` with the reason otherwise."""
        if not isinstance(token, str) or not token:
            raise Unauthorized("a token is required")
        settings = self._settings
        required = ["exp", "sub"]
        if settings.audience is not None:
            required.append("aud")
        if settings.issuer is not None:
            required.append("iss")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                settings.key,
                algorithms=[settings.algorithm],
                audience=settings.audience,
                issuer=settings.issuer,
                options={"require": required, "verify_aud": settings.audience is not None},
                leeway=settings.leeway_s,
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthorized(
                "the token is not valid yet: its iat or nbf is later than now plus "
                f"the allowed clock skew of {settings.leeway_s:g} s"
            ) from None
        except jwt.InvalidSignatureError:
            raise Unauthorized("the token's signature is invalid") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthorized(f"the token lacks the {exc.claim!r} claim") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized("the token is not meant for this audience") from None
        except jwt.InvalidIssuerError:
            raise Unauthorized("the token's issuer is not accepted") from None
        except jwt.InvalidAlgorithmError:
            raise Unauthorized("the token's algorithm is not accepted") from None
        except jwt.PyJWTError:
            raise Unauthorized("the token is malformed") from None
        return Identity(
            actor=_actor(claims), expires_at=float(claims["exp"]), leeway_s=settings.leeway_s
        )


def _actor(claims: dict[str, Any]) -> Actor:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not 1 <= len(subject) <= MAX_SUBJECT_LENGTH:
        raise Unauthorized(f"the token's 'sub' must be 1 to {MAX_SUBJECT_LENGTH} characters")
    if not is_storable_text(subject):
        raise Unauthorized("the token's 'sub' must not contain NUL or unpaired surrogates")
    role = claims.get("role", Role.USER.value)
    if not isinstance(role, str) or role not in {r.value for r in Role}:
        raise Unauthorized("the token's 'role' must be user, admin or worker")
    return Actor(id=subject, role=Role(role))


def require_role(actor: Actor, *roles: Role) -> Actor:
    """The actor, when its role is one of ``roles``; :class:`Forbidden` otherwise."""
    if actor.role not in roles:
        allowed = " or ".join(str(r) for r in roles)
        raise Forbidden(f"this needs a token of role {allowed}, not {actor.role}")
    return actor


def mint_token(
    key: str,
    *,
    sub: str,
    role: Role | str = Role.USER,
    ttl_s: float = 3600,
    algorithm: str = "HS256",
    audience: str | None = None,
    issuer: str | None = None,
    now: float | None = None,
) -> str:
    """A signed token for ``sub``; ``key`` is the HS256 secret or a PEM private key."""
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "sub": sub,
        "role": str(Role(role)),
        "iat": issued,
        "exp": issued + int(ttl_s),
    }
    if audience is not None:
        claims["aud"] = audience
    if issuer is not None:
        claims["iss"] = issuer
    return jwt.encode(claims, key, algorithm=algorithm)


__all__ = ["Identity", "TokenVerifier", "mint_token", "require_role"]
