"""`python -m bali_common.devtoken`: a dev bearer token inside a service image (Compose only).

The images carry no developer tooling (`bali` lives in bali_devkit), yet a Compose stack
without an OpenID Connect provider needs tokens signed with its shared dev key. Production
verifies tokens against the provider's JWKS and refuses dev-signed ones.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import timedelta

from bali_common.auth import Role, issue_dev_token
from bali_common.settings import CommonSettings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bali_common.devtoken", description=__doc__)
    parser.add_argument("--member", help="member id the token acts for")
    parser.add_argument(
        "--role",
        action="append",
        choices=[role.value for role in Role],
        help="role; repeat for several (default: member)",
    )
    parser.add_argument("--subject", help="token subject (user id)")
    parser.add_argument("--hours", type=int, default=12, choices=range(1, 25), metavar="1-24")
    args = parser.parse_args(argv)
    settings = CommonSettings()
    if settings.jwks_url is not None:
        print("BALI_JWKS_URL is set: tokens come from the OpenID Connect provider", file=sys.stderr)
        return 2
    print(
        issue_dev_token(
            settings,
            subject=args.subject or f"dev-{args.member or 'admin'}",
            member_id=args.member,
            roles=[Role(value) for value in args.role or [Role.member.value]],
            ttl=timedelta(hours=args.hours),
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
