#!/usr/bin/env bash
# Creates a device with the attribute foo=bar and the thing type dr-type03 (create it first): create-device.sh --type dr-type03 --attributes foo=bar THING_NAME [POLICY_NAME].
set -euo pipefail
exec "$(dirname "${BASH_SOURCE[0]}")/create-device.sh" --type dr-type03 --attributes foo=bar "$@"
