#!/usr/bin/env bash
# Sets up everything the checks need on a fresh Debian or Ubuntu machine, then runs them:
# ruff (lint and format check), mypy (the layer), shellcheck (deployment scripts and shell tools), cfn-lint and
# checkov on every template, and the whole pytest suite
# (which starts its own local cloud, MQTT brokers and DNS server on 127.0.0.0/8 and stops them again).
set -euo pipefail

# checkov pins boto3 to a version the project cannot use, so it lives in a virtual environment of its own.
readonly CHECKOV_REQUIREMENT="checkov==3.3.30"
# The shell tools call the AWS CLI; it pins its own botocore, so it too gets a virtual environment of its own.
readonly AWSCLI_REQUIREMENT="awscli==1.45.11"

usage() {
    cat <<'USAGE'
usage: deployment/run-unit-tests.sh [pytest arguments...]

Creates .venv (Python 3.11+), installs the project with the local cloud (the "local" extra), its pinned development
tools, checkov and the AWS CLI (each in a virtual environment of its own), installs the system packages the checks
need (mosquitto, knot, shellcheck, jq, openssl) when it can, and runs ruff (lint and format check), mypy, shellcheck,
cfn-lint, checkov and pytest.
Extra arguments go to pytest, e.g. deployment/run-unit-tests.sh -k shadows
Tests run in parallel, one worker per core (pytest-xdist); PYTEST_WORKERS=N sets the number, 0 runs them serially.
USAGE
}

repo_root() {
    cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd
}

install_system_packages() {
    local missing=()
    command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
    command -v knotd >/dev/null 2>&1 || [ -x /usr/sbin/knotd ] || missing+=(knot knot-dnsutils)
    command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
    # create-device-pca.sh and its tests (which also need an AWS CLI that honours AWS_ENDPOINT_URL: v1 on
    # botocore >= 1.31 or v2 >= 2.13; Debian 12's awscli 2.9 does not, so it is not installed here).
    command -v jq >/dev/null 2>&1 || missing+=(jq)
    command -v openssl >/dev/null 2>&1 || missing+=(openssl)
    python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
    [ "${#missing[@]}" -eq 0 ] && return 0
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if ! command -v sudo >/dev/null 2>&1; then
            echo "missing system packages: ${missing[*]} (install them, or run as root)" >&2
            return 0
        fi
        sudo=(sudo)
    fi
    echo "installing system packages: ${missing[*]}"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

python_env() {
    local root="$1"
    if [ ! -x "$root/.venv/bin/python" ]; then
        python3 -m venv "$root/.venv"
    fi
    "$root/.venv/bin/python" -m pip install -q --upgrade pip
    "$root/.venv/bin/python" -m pip install -q -e "${root}[dev,local]"
}

checkov_env() {
    local root="$1"
    if [ ! -x "$root/.venv/checkov/bin/checkov" ]; then
        python3 -m venv "$root/.venv/checkov"
    fi
    "$root/.venv/checkov/bin/python" -m pip install -q "$CHECKOV_REQUIREMENT"
}

awscli_env() {
    local root="$1"
    if [ ! -x "$root/.venv/awscli/bin/aws" ]; then
        python3 -m venv "$root/.venv/awscli"
        "$root/.venv/awscli/bin/python" -m pip install -q "$AWSCLI_REQUIREMENT"
    fi
    # First on the PATH, alone (not the venv's python): another aws on the machine (Debian's 2.9 ignores
    # AWS_ENDPOINT_URL) must never be the one the shell tools' tests run, or they would call AWS, not the local cloud.
    mkdir -p "$root/.venv/aws-only"
    ln -sf "$root/.venv/awscli/bin/aws" "$root/.venv/aws-only/aws"
    export PATH="$root/.venv/aws-only:$PATH"
}

main() {
    if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
        usage
        return 0
    fi
    local root
    root="$(repo_root)"
    cd "$root"
    install_system_packages
    python_env "$root"
    checkov_env "$root"
    awscli_env "$root"
    echo "== ruff (lint; every public callable of the layer has a docstring: pydocstyle D1)"
    .venv/bin/ruff check .
    echo "== ruff format (check only)"
    .venv/bin/ruff format --check .
    echo "== mypy (layer, strict)"
    (cd source/layer && ../../.venv/bin/mypy --config-file ../../pyproject.toml iot_dr)
    echo "== shellcheck"
    if command -v shellcheck >/dev/null 2>&1; then
        shellcheck deployment/*.sh .ci/run source/tools/*.sh source/lambda/iot-dr-region-syncer/*.sh
    else
        echo "shellcheck is not installed; skipped"
    fi
    echo "== cfn-lint"
    .venv/bin/cfn-lint deployment/*.template
    echo "== checkov"
    # Every template must pass with no failed check; suppressions only next to a resource, with a reason.
    local template
    for template in deployment/*.template; do
        .venv/checkov/bin/checkov --quiet --compact --skip-download --framework cloudformation --file "$template"
    done
    echo "== pytest"
    # One worker per core (pytest-xdist); a test module's tests stay on one worker, so each module's local cloud is
    # deployed once. PYTEST_WORKERS=0 runs them in this process.
    .venv/bin/pytest -n "${PYTEST_WORKERS:-auto}" --dist loadfile "$@"
}

main "$@"
