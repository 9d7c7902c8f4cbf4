#!/usr/bin/env bash
# Creates <num_things> devices with AWS IoT bulk registration and prints how long key generation and registration
# took. Needs S3_BUCKET and ARN_IOT_PROVISIONING_ROLE (toolsrc) and the region in AWS_DEFAULT_REGION or REGION.
# The work is done by the Python module iot_dr_cli.bulk_bench; exit codes: 0 all registered, 1 failure, 2 usage.
set -euo pipefail

TOOLS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly TOOLS_DIR

usage() {
    cat <<'USAGE'
usage: bulk-bench.sh <base_thingname> <num_things> [--rsa] [--workers N] [--policy-name NAME] [--template FILE]
                     [--timeout SECONDS]
USAGE
}

main() {
    case "${1:-}" in -h|--help) usage; exit 0 ;; esac
    if [ "$#" -lt 2 ]; then
        usage >&2
        echo "bulk-bench.sh: error: expected <base_thingname> <num_things>" >&2
        exit 2
    fi
    # The tools folder (from aws s3 sync) holds the Python packages; an installed copy finds them on its own.
    PYTHONPATH="$TOOLS_DIR${PYTHONPATH:+:$PYTHONPATH}" exec "${PYTHON:-python3}" -m iot_dr_cli.bulk_bench \
        --policy-file "$TOOLS_DIR/sample-pol1.json" "$@"
}

main "$@"
