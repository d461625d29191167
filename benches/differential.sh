#!/usr/bin/env bash
# The long run of the differential test against Python's Jinja2 and PyYAML:
#   benches/differential.sh [CASES] [SEED]      (default 200000 cases, seed 7)
# Needs a Python with jinja2 and pyyaml: MAGE_SECRETS_PYTHON, else a venv
# made here under target/. Failures are written to target/differential-failures.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
cases="${1:-200000}"
seed="${2:-7}"
if [ -z "${MAGE_SECRETS_PYTHON:-}" ]; then
  venv=target/ci-venv
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check jinja2 pyyaml
  export MAGE_SECRETS_PYTHON="$PWD/$venv/bin/python"
fi
MAGE_SECRETS_REQUIRE_PYTHON=1 \
MAGE_SECRETS_DIFFERENTIAL_CASES="$cases" \
MAGE_SECRETS_DIFFERENTIAL_SEED="$seed" \
MAGE_SECRETS_DIFFERENTIAL_REPORT="$PWD/target/differential-failures.txt" \
  cargo test --release --locked --test integration differential -- --nocapture
