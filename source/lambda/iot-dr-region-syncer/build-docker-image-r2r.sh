#!/usr/bin/env bash
# Build the region-to-region sync image and push it to Amazon ECR.
# Usage: build-docker-image-r2r.sh REPOSITORY ACCOUNT REGION [TAG] (see build-docker-image.sh)
set -euo pipefail
exec "$(dirname "$0")/build-docker-image.sh" region-to-region "$@"
