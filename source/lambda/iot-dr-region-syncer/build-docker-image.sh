#!/usr/bin/env bash
# Build a region-sync image and push it to an Amazon ECR repository that already exists.
# Usage: build-docker-image.sh region-to-region|region-to-ddb REPOSITORY ACCOUNT REGION [TAG]
# Needs docker and the AWS CLI with credentials for ACCOUNT. Exit codes: 0 pushed, 2 bad arguments, other: the
# failing command's code.
set -euo pipefail

usage() {
    echo "usage: $(basename "$0") region-to-region|region-to-ddb REPOSITORY ACCOUNT REGION [TAG]" >&2
    exit 2
}

fail() {
    echo "$(basename "$0"): error: $1" >&2
    exit 2
}

if [ "$#" -lt 4 ] || [ "$#" -gt 5 ]; then usage; fi
sync=$1
repository=$2
account=$3
region=$4
tag=${5:-latest}

case "$sync" in
    region-to-region | region-to-ddb) ;;
    *) fail "the sync must be region-to-region or region-to-ddb, got '$sync'" ;;
esac
[[ "$repository" =~ ^[a-z0-9]+([._/-][a-z0-9]+)*$ ]] || fail "'$repository' is not an ECR repository name"
[[ "$account" =~ ^[0-9]{12}$ ]] || fail "the account must be 12 digits, got '$account'"
[[ "$region" =~ ^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]$ ]] || fail "'$region' is not an AWS region code"
[[ "$tag" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || fail "'$tag' is not an image tag"

root=$(cd "$(dirname "$0")/../../.." && pwd)
registry="$account.dkr.ecr.$region.amazonaws.com"
image="$registry/$repository:$tag"

docker build --file "$root/source/lambda/iot-dr-region-syncer/Dockerfile" --build-arg "SYNC=$sync" \
    --tag "$image" "$root"
# The password goes through a pipe, never a command line or a file.
aws ecr get-login-password --region "$region" | docker login --username AWS --password-stdin "$registry"
docker push "$image"
echo "pushed $image"
