# shellcheck shell=bash
# Shared functions of the developer scripts (scripts/serve, scripts/test,
# scripts/ensure_services.sh). Source it; it defines functions and a few
# variables and changes nothing else. The callers set `set -euo pipefail`.
#
#   JS_ROOT           the repository root (absolute)
#   ensure_venv       .venv exists and holds `pip install -e '.[dev]'`
#   ensure_services   PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379
#   ensure_js_deps    node_modules of tests/js and packages/client-js up to date
#   ensure_js_build   packages/client-js/dist (not committed) built from its src
#   ensure_chromium   Debian's chromium for the browser tests
#
# Environment: CI (true: missing things are errors, and the node
# toolchain may be installed), PYTHON (the interpreter that creates .venv),
# JS_VERBOSE=1 (ensure_services reports services that were already up).

JS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
JS_VENV="$JS_ROOT/.venv"
JS_PG_HOST=127.0.0.1
JS_PG_PORT=5432
JS_REDIS_HOST=127.0.0.1
JS_REDIS_PORT=6379
JS_READY_TIMEOUT_S="${JS_READY_TIMEOUT_S:-30}"
JS_APT_UPDATED=0

# --- small helpers -----------------------------------------------------------

js_log() { printf '%s\n' "$*"; }
js_warn() { printf 'warning: %s\n' "$*" >&2; }
js_die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}
js_header() { printf '\n==> %s\n' "$*"; }
js_have() { command -v "$1" >/dev/null 2>&1; }

# CI=true (any case), as the tests read it.
js_is_ci() {
	[[ "${CI:-}" == [Tt][Rr][Uu][Ee] ]]
}

# Hash of the given files (missing files count as empty), one hex string.
js_hash_files() {
	local f
	for f in "$@"; do
		printf '%s\n' "${f#"$JS_ROOT"/}"
		if [[ -f "$f" ]]; then cat "$f"; fi
	done | sha256sum | cut -d' ' -f1
}

# Run a command as root: directly when we are root, else through sudo -n
# (never prompts: CI has no stdin).
js_as_root() {
	if [[ "$(id -u)" -eq 0 ]]; then
		js_without_lock "$@"
	elif js_have sudo; then
		js_without_lock sudo -n "$@"
	else
		return 1
	fi
}

# Run a command without our lock's file descriptor: a daemon it starts
# (postgres, redis-server) must not inherit it and hold the lock forever.
js_without_lock() {
	if [[ -n "${JS_LOCK_FD:-}" ]]; then
		"$@" {JS_LOCK_FD}>&-
	else
		"$@"
	fi
}

js_can_root() {
	[[ "$(id -u)" -eq 0 ]] || { js_have sudo && sudo -n true 2>/dev/null; }
}

# Take an exclusive lock (file descriptor in JS_LOCK_FD) so that parallel runs
# don't install or start things at the same time. No-op without flock.
js_lock() {
	local name="$1" file
	JS_LOCK_FD=""
	js_have flock || return 0
	if [[ "$name" == services ]]; then
		file="${TMPDIR:-/tmp}/jobspine-services.lock" # the services are machine-wide
	else
		file="${TMPDIR:-/tmp}/jobspine-$name-$(printf '%s' "$JS_ROOT" | sha256sum | cut -c1-12).lock"
	fi
	exec {JS_LOCK_FD}>"$file" || {
		JS_LOCK_FD=""
		return 0
	}
	if ! flock -n "$JS_LOCK_FD"; then
		js_log "waiting for another run to release $file" >&2
		if ! flock -w 900 "$JS_LOCK_FD"; then
			js_warn "could not lock $file within 15 minutes; going on without the lock"
		fi
	fi
}

js_unlock() {
	if [[ -n "${JS_LOCK_FD:-}" ]]; then
		exec {JS_LOCK_FD}>&-
		JS_LOCK_FD=""
	fi
}

# apt-get install, with one `apt-get update` per run. Fails (returns 1) when
# there is no apt-get or no way to be root.
js_apt_install() {
	js_have apt-get || {
		js_warn "apt-get not found: cannot install $*"
		return 1
	}
	js_can_root || {
		js_warn "installing $* needs root (or passwordless sudo)"
		return 1
	}
	local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=300)
	if [[ "$JS_APT_UPDATED" != 1 ]]; then
		js_log "apt-get update" >&2
		js_as_root "${apt[@]}" update >&2 || {
			js_warn "apt-get update failed"
			return 1
		}
		JS_APT_UPDATED=1
	fi
	js_log "apt-get install -y $*" >&2
	js_as_root "${apt[@]}" install -y "$@" >&2
}

# --- Python virtualenv --------------------------------------------------------

# The interpreter that creates .venv: $PYTHON, else python3.11, else python3;
# it must be Python 3.11 or newer.
js_pick_python() {
	local cand
	for cand in ${PYTHON:+"$PYTHON"} python3.11 python3; do
		if js_have "$cand" && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
			printf '%s\n' "$cand"
			return 0
		fi
	done
	return 1
}

js_venv_stamp_value() {
	js_hash_files "$JS_ROOT/pyproject.toml" "$JS_ROOT/packages/shared/pyproject.toml" "$JS_ROOT/packages/client-py/pyproject.toml"
}

# Create .venv on first use and `pip install -e '.[dev]'` into it; skip the
# install while the stamp in .venv matches the pyproject files.
ensure_venv() {
	local stamp="$JS_VENV/.jobspine-install-stamp" want py
	want="$(js_venv_stamp_value)"
	if [[ -x "$JS_VENV/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]] &&
		"$JS_VENV/bin/python" -c '' 2>/dev/null; then
		return 0
	fi

	js_lock venv
	# Another run may have finished the job while we waited for the lock.
	if [[ -x "$JS_VENV/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
		js_unlock
		return 0
	fi

	if [[ -e "$JS_VENV" ]] && ! "$JS_VENV/bin/python" -m pip --version >/dev/null 2>&1; then
		js_warn ".venv is broken (no working python/pip): recreating it"
		rm -rf "$JS_VENV"
	fi
	if [[ ! -e "$JS_VENV" ]]; then
		py="$(js_pick_python)" || js_die "Python 3.11 or newer is required (tried \$PYTHON, python3.11, python3)"
		js_log "creating .venv with $py ($("$py" --version 2>&1))"
		if ! "$py" -m venv "$JS_VENV"; then
			rm -rf "$JS_VENV"
			# Debian's python3 needs python3-venv for ensurepip.
			js_warn "'$py -m venv' failed; trying to install python3-venv"
			js_apt_install python3-venv || js_die "cannot create .venv: install python3-venv (Debian) and retry"
			"$py" -m venv "$JS_VENV" || {
				rm -rf "$JS_VENV"
				js_die "cannot create .venv with $py"
			}
		fi
	fi

	js_log "installing the project into .venv: pip install -e '.[dev]'"
	rm -f "$stamp"
	(cd "$JS_ROOT" && "$JS_VENV/bin/python" -m pip install -q -e '.[dev]') ||
		js_die "pip install -e '.[dev]' failed (see above)"
	printf '%s\n' "$want" >"$stamp"
	js_unlock
}

# --- services ------------------------------------------------------------------

# Is something answering on host:port? (bash's /dev/tcp, bounded by timeout)
js_tcp_open() {
	# shellcheck disable=SC2016 # $1/$2 expand in the inner bash
	timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

js_pg_ready() {
	if js_have pg_isready; then
		pg_isready -q -t 3 -h "$JS_PG_HOST" -p "$JS_PG_PORT"
	else
		js_tcp_open "$JS_PG_HOST" "$JS_PG_PORT"
	fi
}

js_redis_ready() {
	if js_have redis-cli; then
		[[ "$(timeout 3 redis-cli -h "$JS_REDIS_HOST" -p "$JS_REDIS_PORT" ping 2>/dev/null)" == PONG ]]
	else
		# shellcheck disable=SC2016 # expands in the inner bash
		timeout 3 bash -c '
			exec 3<>"/dev/tcp/$1/$2" || exit 1
			printf "PING\r\n" >&3
			IFS= read -r line <&3
			[[ "$line" == "+PONG"* ]]' _ "$JS_REDIS_HOST" "$JS_REDIS_PORT" 2>/dev/null
	fi
}

# js_wait_for CHECK_FUNCTION: poll every 0.5 s for at most JS_READY_TIMEOUT_S.
js_wait_for() {
	local check="$1" tries=$((JS_READY_TIMEOUT_S * 2)) i
	for ((i = 0; i < tries; i++)); do
		"$check" && return 0
		sleep 0.5
	done
	"$check"
}

# The Debian PostgreSQL cluster to use: "VERSION NAME", preferring one on
# port 5432, else the first version in /etc/postgresql with a `main` cluster.
js_pg_cluster() {
	local ver name port _rest
	if js_have pg_lsclusters; then
		while read -r ver name port _rest; do
			if [[ "$port" == "$JS_PG_PORT" ]]; then
				printf '%s %s\n' "$ver" "$name"
				return 0
			fi
		done < <(pg_lsclusters -h 2>/dev/null)
	fi
	if [[ -d /etc/postgresql ]]; then
		# shellcheck disable=SC2012 # version directories: plain names
		for ver in $(ls /etc/postgresql | sort -V); do
			if [[ -d "/etc/postgresql/$ver/main" ]]; then
				printf '%s main\n' "$ver"
				return 0
			fi
		done
	fi
	return 1
}

js_pg_installed_version() {
	# The newest installed server binaries, e.g. 15 for /usr/lib/postgresql/15/bin/postgres.
	local d
	# shellcheck disable=SC2012
	for d in $(ls -d /usr/lib/postgresql/*/bin/postgres 2>/dev/null | sort -V -r); do
		d="${d#/usr/lib/postgresql/}"
		printf '%s\n' "${d%%/*}"
		return 0
	done
	return 1
}

# Can role postgres connect over TCP to 127.0.0.1 without a password?
js_pg_trust_ok() {
	js_have psql || return 0 # no client to check with; the tests will tell
	PGCONNECT_TIMEOUT=5 psql -w -X -q -h "$JS_PG_HOST" -p "$JS_PG_PORT" -U postgres -d postgres \
		-Atc 'select 1' >/dev/null 2>&1
}

# Make 127.0.0.1/::1 connections trusted (local development only): prepend
# trust lines to pg_hba.conf (the first matching line wins) and reload.
js_pg_set_trust() {
	local ver="$1" name="$2" hba="/etc/postgresql/$1/$2/pg_hba.conf" tmp
	local marker="# jobspine (scripts/lib/bootstrap.sh): trust local TCP for development"
	[[ -f "$hba" ]] || return 1
	if ! grep -qF "$marker" "$hba"; then
		js_log "postgres: setting trust auth for 127.0.0.1/32 and ::1/128 in $hba"
		tmp="$(mktemp)"
		{
			printf '%s\n' "$marker"
			printf 'host    all    all    127.0.0.1/32    trust\n'
			printf 'host    all    all    ::1/128         trust\n\n'
			cat "$hba"
		} >"$tmp"
		js_as_root cp "$tmp" "$hba" || {
			rm -f "$tmp"
			return 1
		}
		rm -f "$tmp"
	fi
	js_as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" reload >&2
}

# js_ensure_postgres / js_ensure_redis: return 0 when the service is up, and
# set JS_HOW to how it came up: up (already), started, installed. Progress
# lines go to stderr.
js_ensure_postgres() {
	local ver="" name=""
	JS_HOW=up
	if ! js_pg_ready; then
		JS_HOW=started
		if ! js_have pg_ctlcluster || ! js_pg_cluster >/dev/null; then
			if ! js_pg_installed_version >/dev/null; then
				js_log "postgres: not installed; installing Debian's postgresql" >&2
				js_apt_install postgresql || return 1
				JS_HOW=installed
			fi
		fi
		if ! js_pg_cluster >/dev/null; then
			ver="$(js_pg_installed_version)" || return 1
			js_log "postgres: creating cluster $ver/main" >&2
			js_as_root pg_createcluster "$ver" main --port "$JS_PG_PORT" >&2 || return 1
		fi
		read -r ver name <<<"$(js_pg_cluster)"
		[[ -n "$ver" && -n "$name" ]] || return 1
		if ! js_pg_ready; then
			js_log "postgres: starting cluster $ver/$name" >&2
			js_as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start >&2 ||
				js_warn "pg_ctlcluster $ver $name start failed"
		fi
		js_wait_for js_pg_ready || return 1
	fi
	if ! js_pg_trust_ok; then
		read -r ver name <<<"$(js_pg_cluster)"
		[[ -n "$ver" && -n "$name" ]] || return 1
		js_pg_set_trust "$ver" "$name" || return 1
		js_wait_for js_pg_trust_ok || {
			js_warn "role postgres still cannot connect to $JS_PG_HOST:$JS_PG_PORT without a password"
			return 1
		}
	fi
	return 0
}

js_ensure_redis() {
	JS_HOW=up
	js_redis_ready && return 0
	JS_HOW=started
	if ! js_have redis-server; then
		js_log "redis: not installed; installing Debian's redis-server" >&2
		js_apt_install redis-server || return 1
		JS_HOW=installed
		# The package's own service may have come up already.
		js_wait_for_short js_redis_ready && return 0
	fi
	js_log "redis: starting redis-server on $JS_REDIS_HOST:$JS_REDIS_PORT" >&2
	(cd "${TMPDIR:-/tmp}" && js_without_lock redis-server --daemonize yes --bind "$JS_REDIS_HOST" \
		--port "$JS_REDIS_PORT" --save "" --appendonly no) >&2 ||
		js_warn "redis-server failed to start"
	js_wait_for js_redis_ready
}

js_wait_for_short() {
	local JS_READY_TIMEOUT_S=3
	js_wait_for "$1"
}

# One line per service; one that was already up is reported only when
# JS_VERBOSE=1 (scripts/test sets it; ensure_services.sh stays quiet).
js_report() {
	local what="$1" where="$2"
	case "$JS_HOW" in
	up) if [[ "${JS_VERBOSE:-0}" == 1 ]]; then js_log "$what: up at $where"; fi ;;
	started) js_log "$what: started, up at $where" ;;
	installed) js_log "$what: installed and started, up at $where" ;;
	esac
}

# Ensure PostgreSQL and Redis. When one of them can't be had: under CI an
# error (exit 1), otherwise a warning and return 1 (the tests that need it skip).
ensure_services() {
	local failed=() f
	js_lock services
	if js_ensure_postgres; then
		js_report postgres "$JS_PG_HOST:$JS_PG_PORT"
	else
		failed+=("PostgreSQL at $JS_PG_HOST:$JS_PG_PORT")
	fi
	if js_ensure_redis; then
		js_report redis "$JS_REDIS_HOST:$JS_REDIS_PORT"
	else
		failed+=("Redis at $JS_REDIS_HOST:$JS_REDIS_PORT")
	fi
	js_unlock
	((${#failed[@]} == 0)) && return 0
	for f in "${failed[@]}"; do
		if js_is_ci; then
			printf 'error: %s is not reachable and could not be started or installed\n' "$f" >&2
		else
			js_warn "$f is not reachable and could not be started or installed: tests that need it will be skipped"
		fi
	done
	js_is_ci && js_die "CI=true: PostgreSQL and Redis are required for the test suite"
	return 1
}

# --- JS packages -----------------------------------------------------------------

# The node packages the tests use: the JS test client (tests/js) and the TypeScript
# client (packages/client-js, whose tests run under node --test and whose build is checked).
JS_NODE_DIRS=("tests/js" "packages/client-js")

# node and npm, from Debian under CI when missing; returns 1 (a warning) otherwise.
js_ensure_node() {
	if js_have node && js_have npm; then
		return 0
	fi
	if js_is_ci; then
		js_log "node/npm not found; installing Debian's nodejs and npm"
		if ! js_have node; then
			js_apt_install nodejs npm || js_die "cannot install nodejs/npm (needed by the JS tests)"
		else
			js_apt_install npm || js_die "cannot install npm (needed by the JS tests)"
		fi
		return 0
	fi
	js_warn "node/npm not found: the JS client tests will be skipped (install nodejs and npm)"
	return 1
}

# npm install in DIR (relative to the root) when its package.json exists; skipped while
# the stamp in node_modules matches package.json (and package-lock.json).
js_npm_install() {
	local rel="$1" dir="$JS_ROOT/$1" stamp want
	[[ -f "$dir/package.json" ]] || return 0
	stamp="$dir/node_modules/.jobspine-install-stamp"
	want="$(js_hash_files "$dir/package.json" "$dir/package-lock.json")"
	if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
		return 0
	fi
	js_lock "npm-${rel//\//-}"
	js_log "npm install --prefix $rel"
	if ! timeout 900 npm install --prefix "$dir" --no-audit --no-fund >&2; then
		js_unlock
		if js_is_ci; then
			js_die "npm install --prefix $rel failed"
		fi
		js_warn "npm install --prefix $rel failed: the JS tests may fail or skip"
		return 0
	fi
	# npm may have written package-lock.json: hash after the install.
	js_hash_files "$dir/package.json" "$dir/package-lock.json" >"$stamp"
	js_unlock
}

ensure_js_deps() {
	local rel
	js_ensure_node || return 0
	for rel in "${JS_NODE_DIRS[@]}"; do
		js_npm_install "$rel"
	done
}

# The TypeScript client's build, packages/client-js/dist (not committed): the JS and browser
# tests, the dashboard's type check and scripts/vendor_ui.py read it. `npm run build` (a clean
# tsc build) when its sources changed since the last one; skipped without node or without
# the package's node_modules (those tests then skip, or fail under CI).
JS_CLIENT_DIR="packages/client-js"

ensure_js_build() {
	local dir="$JS_ROOT/$JS_CLIENT_DIR" stamp want sources
	js_have npm && [[ -d "$dir/node_modules/typescript" ]] || return 0
	mapfile -t sources < <(find "$dir/src" -type f | LC_ALL=C sort)
	stamp="$dir/node_modules/.jobspine-build-stamp"
	want="$(js_hash_files "$dir/package.json" "$dir/package-lock.json" "$dir/tsconfig.json" "${sources[@]}")"
	if [[ -f "$stamp" && -f "$dir/dist/index.js" && "$(cat "$stamp")" == "$want" ]]; then
		return 0
	fi
	js_lock "build-${JS_CLIENT_DIR//\//-}"
	js_log "npm run build --prefix $JS_CLIENT_DIR"
	rm -f "$stamp"
	if ! timeout 600 npm run build --prefix "$dir" >&2; then
		js_unlock
		js_die "npm run build --prefix $JS_CLIENT_DIR failed (see above)"
	fi
	printf '%s\n' "$want" >"$stamp"
	js_unlock
}

# --- browser -----------------------------------------------------------------------

# Debian's Chromium for the dashboard's browser tests (tests/test_ui_browser.py drives it
# headless with Playwright from PyPI, which downloads no browser of its own). Installed
# when missing and root is at hand; under CI a failure is an error, otherwise a warning
# (those tests then skip). JOBSPINE_CHROMIUM names another binary.
ensure_chromium() {
	local chromium="${JOBSPINE_CHROMIUM:-/usr/bin/chromium}"
	[[ -x "$chromium" ]] && return 0
	if [[ -z "${JOBSPINE_CHROMIUM:-}" ]] && js_can_root; then
		js_log "chromium: not installed; installing Debian's chromium (browser tests)"
		js_apt_install chromium || true
		[[ -x "$chromium" ]] && return 0
	fi
	if js_is_ci; then
		js_die "CI=true: $chromium is required by the browser tests (apt-get install chromium)"
	fi
	js_warn "$chromium not found: the browser tests will be skipped (apt-get install chromium)"
	return 0
}
