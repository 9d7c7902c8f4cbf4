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
    # shellcheck source=deployment/local-cloud-setup.sh
    . "$(dirname "${BASH_SOURCE[0]}")/local-cloud-setup.sh"
    run_iot_dr demo "" "iot_dr_local" "$@"
}

main "$@"
