"""Copy the dashboard's third-party modules into ``server/ui/vendor/``:
``python scripts/vendor_ui.py [--check]``.

- ``packages/client-js/dist/*.js`` (our ``@jobspine/client``: its build, not committed; this
  script runs ``npm run build`` in the package first) -> ``server/ui/vendor/jobspine-client/``;
- socket.io-client's ESM build, from ``packages/client-js/node_modules`` (installed by
  ``scripts/lib/bootstrap.sh`` ``ensure_js_deps`` at the version its lock file pins) ->
  ``server/ui/vendor/socket.io-client/``.

The copies are committed and the page loads them through its import map, so serving
``/ui/`` needs no Node, no build and no network. ``--check`` builds and copies nothing and
exits 1 when a vendored file differs from its source, is missing, or has no source any more
(``tests/test_ui_static.py`` runs it after ``scripts/test`` built the client).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "server" / "ui" / "vendor"
CLIENT_DIST = ROOT / "packages" / "client-js" / "dist"
BUILD_COMMAND = "npm run build --prefix packages/client-js"
SOCKET_IO_ESM = ROOT / "packages/client-js/node_modules/socket.io-client/dist/socket.io.esm.min.js"


def wanted() -> dict[Path, Path]:
    """vendored file -> its source."""
    files = {VENDOR / "socket.io-client" / SOCKET_IO_ESM.name: SOCKET_IO_ESM}
    for source in sorted(CLIENT_DIST.rglob("*.js")):
        files[VENDOR / "jobspine-client" / source.relative_to(CLIENT_DIST)] = source
    return files


def problems() -> list[str]:
    """What differs between ``server/ui/vendor`` and its sources; empty when current."""
    found: list[str] = []
    files = wanted()
    if not CLIENT_DIST.is_dir():
        found.append(f"{CLIENT_DIST.relative_to(ROOT)} is missing ({BUILD_COMMAND})")
    for target, source in files.items():
        if not source.is_file():
            found.append(
                f"{source.relative_to(ROOT)} is missing (npm install --prefix packages/client-js)"
            )
        elif not target.is_file() or target.read_bytes() != source.read_bytes():
            found.append(f"{target.relative_to(ROOT)} differs from {source.relative_to(ROOT)}")
    for extra in sorted(p for p in VENDOR.rglob("*") if p.is_file() and p not in files):
        found.append(f"{extra.relative_to(ROOT)} has no source")
    return found


def build_client() -> None:
    """``npm run build`` in ``packages/client-js`` (a clean ``tsc`` build into ``dist/``)."""
    npm = shutil.which("npm")
    if npm is None:
        sys.exit("npm is needed to build packages/client-js (install nodejs and npm)")
    subprocess.run([npm, "run", "build", "--prefix", str(CLIENT_DIST.parent)], check=True)


def copy() -> None:
    build_client()
    if VENDOR.exists():
        shutil.rmtree(VENDOR)
    for target, source in wanted().items():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        print(f"{source.relative_to(ROOT)} -> {target.relative_to(ROOT)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail when a vendored copy is stale")
    args = parser.parse_args()
    if args.check:
        stale = problems()
        for line in stale:
            print(line, file=sys.stderr)
        if stale:
            print("run: python scripts/vendor_ui.py", file=sys.stderr)
        return 1 if stale else 0
    copy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
