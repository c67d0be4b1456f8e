# Sourced by scripts/demo and scripts/test: make .venv with the project installed.
# Works on a fresh Debian machine with Python 3.11: installs python3-venv if venv is missing,
# and reinstalls the project only when pyproject.toml changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
EXTRAS="${RPMSG_EXTRAS:-dev,serial,docs,crc}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if [ ! -x .venv/bin/python ]; then
    echo "==> creating virtual environment .venv" >&2
    if ! "$PY" -m venv .venv 2>/dev/null; then
        rm -rf .venv
        echo "==> installing python3-venv (Debian)" >&2
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2
        "$PY" -m venv .venv
    fi
fi
stamp=".venv/.rpmsg-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1) $EXTRAS"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "==> installing rpmsg[$EXTRAS] into .venv" >&2
    .venv/bin/python -m pip install -q --upgrade pip >&2
    .venv/bin/python -m pip install -q -e ".[$EXTRAS]" >&2
    echo "$want" > "$stamp"
fi
# Wireshark's tshark decodes the captures in tests/capture (with our Lua dissector). The
# wireshark-common question "should non-superusers capture packets?" is answered "no".
if ! command -v tshark >/dev/null 2>&1; then
    echo "==> installing tshark (Debian)" >&2
    echo "wireshark-common wireshark-common/install-setuid boolean false" \
        | as_root debconf-set-selections
    if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tshark >/dev/null 2>&1; then
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tshark >/dev/null
    fi
fi
