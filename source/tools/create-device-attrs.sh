#!/usr/bin/env bash
# Creates a device with the attribute foo=bar: create-device.sh --attributes foo=bar THING_NAME [POLICY_NAME].
set -euo pipefail
exec "$(dirname "${BASH_SOURCE[0]}")/create-device.sh" --attributes foo=bar "$@"
