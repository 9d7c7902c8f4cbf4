#!/usr/bin/env bash
# Runs the tools one after the other against a deployment and prints a summary: bulk registration of N devices in the
# primary, device comparison until replicated, shadow replication, deletion in the primary and its replication.
# Needs toolsrc sourced. Exit codes: 0 every step passed, 1 a step failed, 2 usage.
set -euo pipefail

TOOLS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly TOOLS_DIR
PYTHON="${PYTHON:-python3}"
REPLICATION_TIMEOUT="${REPLICATION_TIMEOUT:-600}"
declare -a STEPS=() RESULTS=()

usage() {
    cat <<'USAGE'
usage: iot-dr-run-tests.sh -n <number_of_things> [-b <basename>] [-s <number_of_shadows>]

Environment (toolsrc): PRIMARY_REGION, SECONDARY_REGION, S3_BUCKET, ARN_IOT_PROVISIONING_ROLE;
REPLICATION_TIMEOUT (seconds, default 600) bounds each wait for the secondary.
USAGE
}

fail_usage() {
    usage >&2
    echo "iot-dr-run-tests.sh: error: $1" >&2
    exit 2
}

log() {
    echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $*" | tee -a "$LOG_FILE"
}

step() {
    local name="$1"
    shift
    log "step $name: $*"
    if "$@" >>"$LOG_FILE" 2>&1; then
        RESULTS+=(PASSED)
    else
        RESULTS+=(FAILED)
    fi
    STEPS+=("$name")
    log "step $name: ${RESULTS[-1]}"
}

count_things() {
    # NUM_THINGS of iot-search-devices.py for the test devices in region $1.
    "$PYTHON" "$TOOLS_DIR/iot-search-devices.py" --region "$1" --query-string "thingName:${BASENAME}*" \
        | sed -n 's/.*NUM_THINGS: \([0-9]*\)$/\1/p'
}

# shellcheck disable=SC2317 # called through step
bulk_registration() {
    (cd "$1" && "$TOOLS_DIR/bulk-bench.sh" "$BASENAME" "$2")
}

# shellcheck disable=SC2317 # called through step
deleted_everywhere() {
    local deadline=$((SECONDS + REPLICATION_TIMEOUT)) delay=1 region
    while :; do
        local left=0
        for region in "$PRIMARY_REGION" "$SECONDARY_REGION"; do
            left=$((left + $(count_things "$region")))
        done
        [ "$left" -eq 0 ] && return 0
        [ $((SECONDS + delay)) -lt "$deadline" ] || { echo "$left test things left"; return 1; }
        sleep "$delay"
        delay=$((delay < 16 ? delay * 2 : 16))
    done
}

main() {
    local count="" shadows=""
    BASENAME=""
    case "${1:-}" in --help) usage; exit 0 ;; esac
    while getopts "n:b:s:h" option; do
        case "$option" in
            n) count="$OPTARG" ;;
            b) BASENAME="$OPTARG" ;;
            s) shadows="$OPTARG" ;;
            h) usage; exit 0 ;;
            *) fail_usage "unknown option" ;;
        esac
    done
    [[ "$count" =~ ^[1-9][0-9]*$ ]] || fail_usage "-n needs a positive number"
    [ -z "$shadows" ] || [[ "$shadows" =~ ^[1-9][0-9]*$ ]] || fail_usage "-s needs a positive number"
    local name
    for name in PRIMARY_REGION SECONDARY_REGION S3_BUCKET ARN_IOT_PROVISIONING_ROLE; do
        [ -n "${!name:-}" ] || fail_usage "$name is not set: source toolsrc (. toolsrc)"
    done
    BASENAME="${BASENAME:-dr-test-$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')-}"
    local started results_dir
    started="$(date -u +%Y-%m-%d_%H-%M-%S)"
    results_dir="iot-dr-test-results-$started"
    mkdir -p "$results_dir"
    LOG_FILE="$PWD/$results_dir/iot-dr-run-tests.log"
    export AWS_DEFAULT_REGION="$PRIMARY_REGION"

    for region in "$PRIMARY_REGION" "$SECONDARY_REGION"; do
        if [ "$(count_things "$region")" != "0" ]; then
            echo "iot-dr-run-tests.sh: error: things named ${BASENAME}* exist in $region already" >&2
            exit 1
        fi
    done
    log "basename $BASENAME, $count things, results in $results_dir"
    step bulk-registration bulk_registration "$results_dir" "$count"
    step device-comparison "$PYTHON" "$TOOLS_DIR/iot-devices-cmp.py" --query-string "thingName:${BASENAME}*" \
        --wait "$REPLICATION_TIMEOUT" --json "$results_dir/drift.json"
    step shadow-comparison "$PYTHON" "$TOOLS_DIR/iot-dr-shadow-cmp.py" --num-tests "${shadows:-$count}"
    step deletion "$PYTHON" "$TOOLS_DIR/delete-things.py" --region "$PRIMARY_REGION" \
        --query-string "thingName:${BASENAME}*" -f
    step deletion-replicated deleted_everywhere

    local failed=0 i
    log "summary: basename $BASENAME things $count start $started end $(date -u +%Y-%m-%d_%H-%M-%S)"
    for i in "${!STEPS[@]}"; do
        log "  ${STEPS[$i]}: ${RESULTS[$i]}"
        [ "${RESULTS[$i]}" = PASSED ] || failed=1
    done
    if [ "$failed" -eq 0 ]; then
        log "ALL STEPS PASSED"
    else
        log "SOME STEPS FAILED: see $LOG_FILE"
    fi
    exit "$failed"
}

main "$@"
