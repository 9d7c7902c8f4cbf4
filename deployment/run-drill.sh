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

main() {
    # shellcheck source=deployment/local-cloud-setup.sh
    . "$(dirname "${BASH_SOURCE[0]}")/local-cloud-setup.sh"
    run_iot_dr drill "mosquitto knotd" "iot_dr_local plotly tqdm" "$@"
}

main "$@"
