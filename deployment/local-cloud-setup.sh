# shellcheck shell=bash
# Set-up shared by run-drill.sh and run-local-demo.sh, which source this file: they run the two-region local cloud
# on a fresh Debian or Ubuntu machine. Defines functions only; running it does nothing.

# Moves to the repository's root (the parent of this file's folder).
cd_repository_root() {
    cd "$(dirname "${BASH_SOURCE[0]}")/.." || return
}

# Prints the Debian packages missing for the given needs: python3-venv always (python3 -m venv needs ensurepip),
# plus mosquitto and knot for the arguments "mosquitto" and "knotd" (the daemons the local cloud starts).
missing_system_packages() {
    python3 -c 'import ensurepip, venv' 2>/dev/null || echo python3-venv
    local daemon
    for daemon in "$@"; do
        if ! command -v "$daemon" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$daemon" ]; then
            case "$daemon" in
                knotd) echo knot ;;
                *) echo "$daemon" ;;
            esac
        fi
    done
}

# Installs the given Debian packages with apt-get (through sudo when not root); nothing when none are given.
apt_install() {
    [ "$#" -eq 0 ] && return 0
    local sudo=()
    [ "$(id -u)" -ne 0 ] && sudo=(sudo)
    echo "installing system packages: $*"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Creates .venv (Python 3.11+) if needed and installs the project with its "local" extra (the local cloud) unless
# .venv's Python can already import every module given.
local_cloud_venv() {
    [ -x .venv/bin/python ] || python3 -m venv .venv
    local modules
    modules="$(IFS=,; echo "$*")"
    if ! .venv/bin/python -c "import $modules" 2>/dev/null; then
        .venv/bin/python -m pip install -q --upgrade pip
        .venv/bin/python -m pip install -q -e '.[local]'
    fi
}

# run_iot_dr COMMAND DAEMONS MODULES [ARGUMENT...]: prints the caller's usage (its function "usage") for -h or --help;
# otherwise sets up the machine for the local cloud (the system packages for the space-separated DAEMONS, see
# missing_system_packages, then .venv able to import the space-separated MODULES) and runs `iot-dr COMMAND ARGUMENT...`
# from the repository's root in place of the calling script.
run_iot_dr() {
    local command="$1" daemons modules packages
    read -ra daemons <<<"$2"
    read -ra modules <<<"$3"
    shift 3
    if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
        usage
        return 0
    fi
    cd_repository_root
    mapfile -t packages < <(missing_system_packages "${daemons[@]}")
    apt_install "${packages[@]}"
    local_cloud_venv "${modules[@]}"
    exec .venv/bin/iot-dr "$command" "$@"
}
