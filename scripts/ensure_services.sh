#!/usr/bin/env bash
# Make sure PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) are up for
# the tests: start them when installed but down, install Debian's packages
# when missing. Idempotent; silent when both are already up (-v: say so).
# Exit status: 0 when both are up; 1 when one can't be had.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib/bootstrap.sh
source "$(dirname "$0")/lib/bootstrap.sh"
cd "$JS_ROOT"

case "${1:-}" in
-v | --verbose) JS_VERBOSE=1 ;;
"") ;;
*)
	echo "usage: $0 [-v]" >&2
	exit 2
	;;
esac

ensure_services
