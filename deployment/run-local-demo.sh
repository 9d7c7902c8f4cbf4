#!/usr/bin/env bash
# The local replication demo: sets itself up on a fresh Debian or Ubuntu machine, starts the two-region local
# cloud on 127.0.0.1, deploys the solution from the templates, creates a fleet in the primary region and shows
# it appear in the secondary, ending with a parity table of both regions.
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: deployment/run-local-demo.sh [--things N]

Creates .venv (Python 3.11+) with the project's pinned dependencies if needed, then runs `iot-dr demo`.
USAGE
}

main() {
    if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
        usage
        return 0
    fi
    local root
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    cd "$root"
    if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
        local sudo=()
        [ "$(id -u)" -ne 0 ] && sudo=(sudo)
        "${sudo[@]}" apt-get update -qq
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    fi
    [ -x .venv/bin/python ] || python3 -m venv .venv
    # The demo runs on the local cloud, the package's "local" extra.
    if ! .venv/bin/python -c 'import iot_dr_local' 2>/dev/null; then
        .venv/bin/python -m pip install -q --upgrade pip
        .venv/bin/python -m pip install -q -e '.[local]'
    fi
    exec .venv/bin/iot-dr demo "$@"
}

main "$@"
