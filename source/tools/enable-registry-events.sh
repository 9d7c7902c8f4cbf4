#!/usr/bin/env bash
# Turns on what the solution needs in each region: the registry events it replicates (things, thing types, thing
# groups, memberships, hierarchy, type associations) and fleet indexing (REGISTRY_AND_SHADOW, connectivity STATUS),
# which the compare, search and delete tools use. Regions: the arguments, else PRIMARY_REGION and SECONDARY_REGION
# from toolsrc. Exit codes: 0 done, 1 AWS refused a call, 2 usage.
set -euo pipefail

# The event types the solution subscribes to (iot_dr.core.event_types.REGISTRY_EVENT_CONFIGURATIONS).
readonly EVENT_TYPES=(THING THING_TYPE THING_TYPE_ASSOCIATION THING_GROUP THING_GROUP_MEMBERSHIP THING_GROUP_HIERARCHY)

usage() {
    echo "usage: enable-registry-events.sh [REGION...]   (default: \$PRIMARY_REGION \$SECONDARY_REGION)"
}

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
    configurations="$(event_configurations)"
    for region in "${regions[@]}"; do
        aws iot update-event-configurations --region "$region" --event-configurations "$configurations"
        aws iot update-indexing-configuration --region "$region" \
            --thing-indexing-configuration thingIndexingMode=REGISTRY_AND_SHADOW,thingConnectivityIndexingMode=STATUS
        echo "registry events and fleet indexing enabled in $region"
    done
}

main "$@"
