#!/usr/bin/env bash
# The disaster-recovery drill: sets itself up on a fresh Debian or Ubuntu machine (the MQTT broker, the DNS server,
# .venv with the pinned dependencies), then runs `iot-dr drill` on the two-region local cloud on 127.0.0.1 and
# writes drill.json and drill.html to the report directory (default drill-report).
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: deployment/run-drill.sh [--devices N] [--clients N] [--report DIR] [iot-dr drill options]

Installs mosquitto and knot if missing (apt-get, with sudo when not root), creates .venv (Python 3.11+) with the
project's pinned dependencies if needed, then runs `iot-dr drill` with the given options. With --aws (and
--primary-region, --secondary-region) it drills a real deployment instead: see docs/drill-report.md.
USAGE
}

install_system_packages() {
    local missing=()
    command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
    command -v knotd >/dev/null 2>&1 || [ -x /usr/sbin/knotd ] || missing+=(knot)
    python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
    [ "${#missing[@]}" -eq 0 ] && return 0
    local sudo=()
    [ "$(id -u)" -ne 0 ] && sudo=(sudo)
    echo "installing system packages: ${missing[*]}"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

main() {
    if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
        usage
        return 0
    fi
    local root
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    cd "$root"
    install_system_packages
    [ -x .venv/bin/python ] || python3 -m venv .venv
    # The drill runs on the local cloud, the package's "local" extra.
    if ! .venv/bin/python -c 'import iot_dr_local, plotly, tqdm' 2>/dev/null; then
        .venv/bin/python -m pip install -q --upgrade pip
        .venv/bin/python -m pip install -q -e '.[local]'
    fi
    exec .venv/bin/iot-dr drill "$@"
}

main "$@"
