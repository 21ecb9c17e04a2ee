"""Mint a jobspine JWT and print it.

    python scripts/mint_token.py --secret S --sub u1 --role user --ttl 3600
    python scripts/mint_token.py --private-key key.pem --sub worker-1 --role worker

Without --secret or --private-key, the HS256 secret comes from JWT_SECRET. --aud and --iss
default to JWT_AUDIENCE and JWT_ISSUER.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from server.actors import Role
from server.auth import mint_token
from server.config import MIN_SECRET_BYTES


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Mint a jobspine JWT.")
    key = parser.add_mutually_exclusive_group()
    key.add_argument("--secret", help="HS256 secret (default: $JWT_SECRET)")
    key.add_argument("--private-key", type=Path, help="PEM private key file for RS256/ES256")
    parser.add_argument("--algorithm", choices=["HS256", "RS256", "ES256"])
    parser.add_argument("--sub", required=True, help="user or worker id")
    parser.add_argument("--role", choices=[r.value for r in Role], default=Role.USER.value)
    parser.add_argument("--ttl", type=int, default=3600, help="seconds the token is valid")
    parser.add_argument("--aud", default=os.environ.get("JWT_AUDIENCE") or None)
    parser.add_argument("--iss", default=os.environ.get("JWT_ISSUER") or None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.ttl <= 0:
        parser.error("--ttl must be positive")
    if args.private_key is not None:
        key = args.private_key.read_text()
        algorithm = args.algorithm or "RS256"
        if algorithm == "HS256":
            parser.error("--private-key needs --algorithm RS256 or ES256")
    else:
        key = args.secret or os.environ.get("JWT_SECRET") or ""
        algorithm = args.algorithm or "HS256"
        if algorithm != "HS256":
            parser.error("RS256 and ES256 need --private-key")
        if len(key.encode()) < MIN_SECRET_BYTES:
            parser.error(f"give --secret or JWT_SECRET of at least {MIN_SECRET_BYTES} bytes")
    token = mint_token(
        key,
        sub=args.sub,
        role=args.role,
        ttl_s=args.ttl,
        algorithm=algorithm,
        audience=args.aud,
        issuer=args.iss,
    )
    print(token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
