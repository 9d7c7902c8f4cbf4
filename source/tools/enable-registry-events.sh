#!/usr/bin/env bash
# Turns on what the solution needs in each region: the registry events it replicates (things, thing types, thing
# groups, memberships, hierarchy, type associations) and fleet indexing (REGISTRY_AND_SHADOW, connectivity STATUS),
# which the compare, search and delete tools use. Regions: the arguments, else PRIMARY_REGION and SECONDARY_REGION
# from toolsrc. Exit codes: 0 done, 1 AWS refused a call or was unreachable (the AWS CLI's own codes, such as 255, are
# mapped to 1), 2 usage (also a malformed region, checked before any call).
set -euo pipefail

# The event types the solution subscribes to (iot_dr.core.event_types.REGISTRY_EVENT_CONFIGURATIONS).
readonly EVENT_TYPES=(THING THING_TYPE THING_TYPE_ASSOCIATION THING_GROUP THING_GROUP_MEMBERSHIP THING_GROUP_HIERARCHY)

usage() {
    echo "usage: enable-registry-events.sh [REGION...]   (default: \$PRIMARY_REGION \$SECONDARY_REGION)"
}

aws_failed_is_failure() {
    local code=$?
    if [ "$code" -gt 2 ]; then
        echo "enable-registry-events.sh: error: an AWS CLI call failed (exit code $code; its message is above)" >&2
        exit 1
    fi
}
trap aws_failed_is_failure EXIT

event_configurations() {
    local type entries=()
    for type in "${EVENT_TYPES[@]}"; do
        entries+=("\"$type\": {\"Enabled\": true}")
    done
    local IFS=,
    echo "{${entries[*]}}"
}

main() {
    case "${1:-}" in -h|--help) usage; exit 0 ;; -*) usage >&2; echo "enable-registry-events.sh: error: unknown option $1" >&2; exit 2 ;; esac
    local regions=("$@")
    if [ "${#regions[@]}" -eq 0 ]; then
        if [ -z "${PRIMARY_REGION:-}" ] || [ -z "${SECONDARY_REGION:-}" ]; then
            usage >&2
            echo "enable-registry-events.sh: error: name the regions, or source toolsrc (. toolsrc)" >&2
            exit 2
        fi
        regions=("$PRIMARY_REGION" "$SECONDARY_REGION")
    fi
    local region configurations
    for region in "${regions[@]}"; do
        # The shape of an AWS region code (as iot_dr_cli.arguments.region): a typo is a usage error, not a timeout.
        if ! [[ "$region" =~ ^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]$ ]]; then
            echo "enable-registry-events.sh: error: $region is not an AWS region code such as us-east-1" >&2
            exit 2
        fi
    done
    configurations="$(event_configurations)"
    for region in "${regions[@]}"; do
        aws iot update-event-configurations --region "$region" --event-configurations "$configurations"
        aws iot update-indexing-configuration --region "$region" \
            --thing-indexing-configuration thingIndexingMode=REGISTRY_AND_SHADOW,thingConnectivityIndexingMode=STATUS
        echo "registry events and fleet indexing enabled in $region"
    done
}

main "$@"
