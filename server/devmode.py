"""``--dev``: ready-made tokens and examples printed at start."""

from __future__ import annotations

from server.actors import Role
from server.auth import mint_token
from server.config import Settings

#: Tokens printed by ``--dev`` are valid this long.
DEV_TOKEN_TTL_S = 24 * 3600

DEV_ACCOUNTS: tuple[tuple[str, Role], ...] = (
    ("u1", Role.USER),
    ("u2", Role.USER),
    ("admin", Role.ADMIN),
    ("worker-1", Role.WORKER),
)


def dev_tokens(settings: Settings) -> dict[str, str]:
    """``sub -> token`` for the development accounts; empty when this process cannot sign."""
    jwt = settings.jwt
    if not jwt.can_mint:
        return {}
    return {
        sub: mint_token(
            jwt.key,
            sub=sub,
            role=role,
            ttl_s=DEV_TOKEN_TTL_S,
            audience=jwt.audience,
            issuer=jwt.issuer,
        )
        for sub, role in DEV_ACCOUNTS
    }


def banner(settings: Settings) -> str:
    url = f"http://{settings.host}:{settings.port}"
    tokens = dev_tokens(settings)
    if not tokens:
        return (
            "jobspine --dev: tokens are verified with JWT_PUBLIC_KEY, so none can be minted "
            "here; sign them with the matching private key."
        )
    source = "a random secret for this process" if settings.jwt.generated else "JWT_SECRET"
    lines = [f"jobspine --dev: tokens signed with {source}, valid 24 h", ""]
    lines += [f"  {sub:<9} ({role}): {tokens[sub]}" for sub, role in DEV_ACCOUNTS]
    lines += [
        "",
        "  # create a job and list yours",
        f"  curl -s -X POST {url}/api/jobs -H 'Authorization: Bearer {tokens['u1']}' \\",
        "       -H 'content-type: application/json' \\",
        '       -d \'{"type":"research","input":{"query":"batteries"}}\'',
        f"  curl -s {url}/api/jobs -H 'Authorization: Bearer {tokens['u1']}'",
        "",
        "  // watch jobs from JS (socket.io-client)",
        f"  const socket = io('{url}', {{auth: {{token: '<u1 token>'}}}});",
        "  socket.on('job:progress', (e) => console.log(e));",
        "  socket.emit('job:subscribe', {job_id: '<id>'}, (ack) => console.log(ack));",
        "",
        "  # run the example workers",
        f"  JOBSPINE_URL={url} JOBSPINE_TOKEN={tokens['worker-1']} python -m workers",
        "",
    ]
    return "\n".join(lines)


__all__ = ["DEV_ACCOUNTS", "banner", "dev_tokens"]
