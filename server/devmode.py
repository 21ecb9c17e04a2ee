"""``--dev``: ready-made tokens and examples printed at start.

``--dev`` only serves a loopback ``HOST`` (:func:`server.config.load_settings` refuses any
other). Tokens signed with a secret generated for this process are valid 24 h: they die with
it. With a real ``JWT_SECRET`` the printed tokens are valid :data:`REAL_SECRET_TOKEN_TTL_S`
only, so that a token copied from a terminal or a log is not a long-lived admin key.
"""

from __future__ import annotations

from server.actors import Role
from server.auth import mint_token
from server.config import Settings

#: Tokens printed by ``--dev`` are valid this long when the secret was generated.
DEV_TOKEN_TTL_S = 24 * 3600
#: ... and this long when they are signed with the configured ``JWT_SECRET``.
REAL_SECRET_TOKEN_TTL_S = 10 * 60

DEV_ACCOUNTS: tuple[tuple[str, Role], ...] = (
    ("u1", Role.USER),
    ("u2", Role.USER),
    ("admin", Role.ADMIN),
    ("worker-1", Role.WORKER),
)


#: The accounts whose dashboard links ``--dev`` prints.
DASHBOARD_ACCOUNTS = ("u1", "admin")


def dashboard_link(base_url: str, token: str) -> str:
    """``BASE/ui/#token=<jwt>``: the fragment stays in the browser, out of every request and
    log line; the page moves it to ``sessionStorage`` and drops it from the address bar."""
    return f"{base_url}/ui/#token={token}"


def token_ttl_s(settings: Settings) -> int:
    return DEV_TOKEN_TTL_S if settings.jwt.generated else REAL_SECRET_TOKEN_TTL_S


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
            ttl_s=token_ttl_s(settings),
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
    if settings.jwt.generated:
        source, validity = "a random secret for this process", "24 h"
    else:
        source, validity = "JWT_SECRET", f"{REAL_SECRET_TOKEN_TTL_S // 60} min only"
    lines = [f"jobspine --dev: tokens signed with {source}, valid {validity}", ""]
    lines += [f"  {sub:<9} ({role}): {tokens[sub]}" for sub, role in DEV_ACCOUNTS]
    lines += [
        "",
        "  # the dashboard (the token rides in the link's #fragment, never sent to the server)",
    ]
    lines += [f"  {sub:<9} {dashboard_link(url, tokens[sub])}" for sub in DASHBOARD_ACCOUNTS]
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


__all__ = [
    "DASHBOARD_ACCOUNTS",
    "DEV_ACCOUNTS",
    "REAL_SECRET_TOKEN_TTL_S",
    "banner",
    "dashboard_link",
    "dev_tokens",
    "token_ttl_s",
]
