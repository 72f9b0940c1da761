#!/usr/bin/env bash
# Sets up everything mediasrv needs on a fresh Debian machine, idempotently:
# the Debian packages (SIPp, baresip, libsndfile, PortAudio, espeak-ng/sox for prompts,
# Kamailio with its SQLite and PostgreSQL modules and a PostgreSQL server for the proxy tests),
# a virtual environment in .venv, the Python packages, and the compiled media core.
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_PACKAGES=(sip-tester baresip libsndfile1 libportaudio2 libspandsp2 libopus-dev libsrtp2-dev
              libssl-dev kamailio kamailio-sqlite-modules sqlite3 systemd
              kamailio-postgres-modules postgresql)
missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
  # Debian starts its own Kamailio on *:5060, where `make run` listens: the tests run their own
  if [[ " ${missing[*]} " == *" kamailio "* ]] && command -v systemctl >/dev/null; then
    $SUDO systemctl disable --now kamailio >/dev/null 2>&1 || true
  fi
  # nor Debian's PostgreSQL cluster: the several-proxies test starts its own (initdb)
  if [[ " ${missing[*]} " == *" postgresql "* ]] && command -v systemctl >/dev/null; then
    $SUDO systemctl disable --now postgresql >/dev/null 2>&1 || true
  fi
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ setup.py -nt "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q "setuptools>=77" wheel "Cython>=3.1,<4" "numpy>=2.0,<2.5"
  .venv/bin/pip install -q --no-build-isolation -e ".[test]"
  touch "$stamp"
fi
# Rebuild the media core when a Cython source changed (Cython skips unchanged sources).
.venv/bin/python setup.py -q build_ext --inplace >/dev/null
