# shellcheck shell=bash
# Shared helpers for the scripts in scripts/. Source it, don't run it:
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
#
# Provides:
#   DL_REPO                    absolute path of the repository root
#   dl_log MSG...              print "[script] MSG" on stderr
#   dl_die MSG...              print an error on stderr and exit 1
#   dl_python                  print the path of a Python >= 3.11 interpreter
#   dl_venv_setup dev|run|bench  create .venv if missing and (re)install the project into it
#                              when pyproject.toml changed since the last install
#   dl_setting NAME [DEFAULT]  the value of a dockerlink setting as dockerlink reads it: env
#                              DOCKERLINK_<NAME> or <name>, else the .env file in the repo root
#                              (DOCKERLINK_<NAME>= over <name>=), else DEFAULT
#   dl_sock_path VALUE         VALUE without a leading unix:// (socket settings accept both)
#   dl_ping_sock PATH          true when a Docker engine answers GET /_ping on that socket

DL_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DL_VENV="$DL_REPO/.venv"

dl_log() {
    printf '[%s] %s\n' "$(basename "$0")" "$*" >&2
}

dl_die() {
    printf '[%s] ERROR: %s\n' "$(basename "$0")" "$*" >&2
    exit 1
}

# A Python >= 3.11: python3.11 when present, else python3 if it is new enough.
dl_python() {
    local candidate
    for candidate in python3.11 python3.12 python3.13 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    dl_die "no Python >= 3.11 found (tried python3.11, python3.12, python3.13, python3)"
}

# dl_venv_setup dev|run|bench
#   dev: pip install -e '.[dev]'    run: pip install -e .    bench: pip install -e '.[dev,bench]'
# The install is skipped when the stamp file in .venv records the same pyproject.toml hash
# (a dev install also satisfies run, a bench install both).
dl_venv_setup() {
    local kind="${1:-dev}" spec stamp want have
    case "$kind" in
        dev) spec='.[dev]' ;;
        run) spec='.' ;;
        bench) spec='.[dev,bench]' ;;
        *) dl_die "dl_venv_setup: unknown kind '$kind' (dev|run|bench)" ;;
    esac
    # (a .venv made without pip, as `python3 -m venv` leaves it when ensurepip is missing, is
    # made again)
    if [[ ! -x "$DL_VENV/bin/python" ]] ||
        ! "$DL_VENV/bin/python" -m pip --version >/dev/null 2>&1; then
        local py
        py="$(dl_python)"
        if ! "$py" -c 'import ensurepip' 2>/dev/null; then
            # Debian and Ubuntu ship venv's pip apart, in python3-venv
            dl_log "installing python3-venv (apt-get install python3-venv)"
            apt-get install -y -qq python3-venv >/dev/null 2>&1 ||
                { apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null; } ||
                dl_die "$py cannot make a virtualenv with pip: install python3-venv"
        fi
        dl_log "creating .venv with $py ($("$py" --version 2>&1))"
        "$py" -m venv --clear "$DL_VENV"
        rm -f "$DL_VENV/.dockerlink-install"
    fi
    stamp="$DL_VENV/.dockerlink-install"
    want="$(sha256sum "$DL_REPO/pyproject.toml" | cut -d' ' -f1)"
    have="$(cat "$stamp" 2>/dev/null || true)"
    if [[ "$have" == "$want $kind" || "$have" == "$want bench" ||
        ("$have" == "$want dev" && "$kind" != bench) ]]; then
        return 0
    fi
    dl_log "installing the project into .venv (pip install -e '$spec')"
    (cd "$DL_REPO" && "$DL_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        -e "$spec") || dl_die "pip install -e '$spec' failed"
    printf '%s %s\n' "$want" "$kind" >"$stamp"
}

# dl_setting NAME [DEFAULT]
# NAME is the lower-case setting name (docker_sock), read as dockerlink reads it: the
# environment first (DOCKERLINK_<NAME upper-case>, then <name>), then the .env file in the
# repository root (DOCKERLINK_DOCKER_SOCK=... over docker_sock=..., optionally after "export ",
# optionally quoted; the last matching line of each counts).
dl_setting() {
    local name="$1" default="${2-}" env_name value line key prefixed="" bare="" which
    env_name="DOCKERLINK_${name^^}"
    for which in "$env_name" "${name,,}"; do
        if [[ -n "${!which+set}" ]]; then
            printf '%s\n' "${!which}"
            return 0
        fi
    done
    if [[ -f "$DL_REPO/.env" ]]; then
        while IFS= read -r line || [[ -n "$line" ]]; do
            line="${line#"${line%%[![:space:]]*}"}"   # strip leading blanks
            [[ -z "$line" || "$line" == \#* ]] && continue
            line="${line#export }"
            [[ "$line" == *=* ]] || continue
            key="${line%%=*}"
            key="${key%"${key##*[![:space:]]}"}"       # strip trailing blanks
            [[ "$key" == "$env_name" || "$key" == "${name,,}" ]] || continue
            value="${line#*=}"
            value="${value#"${value%%[![:space:]]*}"}"
            value="${value%"${value##*[![:space:]]}"}"
            if [[ "$value" == \"*\" || "$value" == \'*\' ]]; then
                value="${value:1:${#value}-2}"
            fi
            if [[ "$key" == "$env_name" ]]; then prefixed="x$value"; else bare="x$value"; fi
        done <"$DL_REPO/.env"
    fi
    if [[ -n "$prefixed" ]]; then
        printf '%s\n' "${prefixed#x}"
    elif [[ -n "$bare" ]]; then
        printf '%s\n' "${bare#x}"
    else
        printf '%s\n' "$default"
    fi
}

dl_sock_path() {
    local value="$1"
    value="${value#unix://}"
    printf '%s\n' "$value"
}

# True when something answering like a Docker engine listens on the unix socket PATH.
dl_ping_sock() {
    local sock="$1" answer
    [[ -S "$sock" ]] || return 1
    if command -v curl >/dev/null 2>&1; then
        answer="$(curl --silent --max-time 5 --unix-socket "$sock" http://localhost/_ping 2>/dev/null)" ||
            return 1
    else
        answer="$("$(dl_python)" - "$sock" <<'EOF' 2>/dev/null
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall(b"GET /_ping HTTP/1.0\r\nHost: localhost\r\n\r\n")
data = b""
while chunk := s.recv(65536):
    data += chunk
print(data.split(b"\r\n\r\n", 1)[-1].decode(errors="replace"))
EOF
        )" || return 1
    fi
    [[ "$answer" == OK* ]]
}
