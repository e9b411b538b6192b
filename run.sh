#!/usr/bin/env bash
# crampwatch set-up and entry points. Creates .venv (and installs what is missing) on first use.
#   ./run.sh demo [OPTIONS]   the whole product on demo data: broker, dashboard, simulated device
#   ./run.sh test [PYTEST ARGS]   the whole test suite
#   ./run.sh bench [OPTIONS]  benchmarks (installs the peers NeuroKit2 and BioSPPy)
#   ./run.sh crampwatch ARGS  any crampwatch command inside the environment
# Relative paths given to `crampwatch` and `demo` are read from the caller's working directory;
# the tests and benchmarks run from the repository.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")" && pwd)"
VENV="$ROOT/.venv"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
    echo "run.sh: installing Debian packages: $*" >&2
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

ensure_python() {
    if ! command -v python3 >/dev/null; then apt_install python3; fi
    python3 - <<'PY' || { echo "run.sh: crampwatch needs Python 3.11 or newer" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY
    if ! python3 -c "import ensurepip, venv" 2>/dev/null; then
        apt_install "python3-venv"
    fi
}

ensure_mosquitto() {
    # The MQTT broker (and its command-line clients) that tests and the demo run on loopback.
    if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ] \
        || ! command -v mosquitto_sub >/dev/null; then
        apt_install mosquitto mosquitto-clients
    fi
}

ensure_chromium() {
    # The headless browser the web UI tests drive.
    if ! command -v chromium >/dev/null && [ ! -x /usr/bin/chromium ]; then
        apt_install chromium
    fi
}

installed_with() {
    # Is there an install of this pyproject.toml with every extra in $1 (and perhaps more)?
    local stamp have extra
    for stamp in "$VENV"/.installed-*; do
        [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$2" ] || continue
        have=",${stamp##*/.installed-},"
        for extra in ${1//,/ }; do
            case "$have" in *",$extra,"*) ;; *) continue 2 ;; esac
        done
        return 0
    done
    return 1
}

ensure_venv() {
    local extras="$1" stamp="$VENV/.installed-$1"
    ensure_python
    if [ ! -x "$VENV/bin/python" ]; then
        python3 -m venv "$VENV"
    fi
    local wanted
    wanted="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
    if ! installed_with "$extras" "$wanted"; then
        echo "run.sh: installing crampwatch[$extras] into $VENV" >&2
        "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
        # setuptools tells every editable install how editable installs work; that is not news here.
        PYTHONWARNINGS="ignore:Editable installation" \
            "$VENV/bin/python" -m pip install -q -e "$ROOT[$extras]"
        echo "$wanted" > "$stamp"
    fi
}

command="${1:-help}"
[ $# -gt 0 ] && shift
case "$command" in
    demo)
        ensure_mosquitto
        ensure_venv research,dashboard
        exec "$VENV/bin/crampwatch" demo "$@" ;;
    test)
        ensure_mosquitto
        ensure_chromium
        ensure_venv research,dashboard,test
        # One process: the real-time acquisition tests run threads that need the second core.
        cd "$ROOT"
        exec "$VENV/bin/python" -m pytest "$@" ;;
    bench)
        ensure_mosquitto
        ensure_venv research,dashboard,bench
        cd "$ROOT"
        exec "$VENV/bin/python" -m benchmarks "$@" ;;
    crampwatch)
        ensure_venv research,dashboard
        exec "$VENV/bin/crampwatch" "$@" ;;
    *)
        sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
        [ "$command" = help ] || exit 2 ;;
esac
