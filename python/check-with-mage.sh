#!/usr/bin/env bash
# The longer check: installs mage-ai==0.9.80 and this package's wheel into a
# throwaway virtual environment and runs the Python tests there, including
# test_real_mage.py (Mage's own ConfigFileLoader and get_secret_value after
# install_into_mage()). Takes several minutes (mage-ai has many
# dependencies), so CI does not run it.
#   python/check-with-mage.sh            # from the repository root
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${MAGE_CHECK_VENV:-target/mage-check-venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q mage-ai==0.9.80 maturin pytest
cargo build --locked --bin mage-secrets
"$venv/bin/maturin" build --out target/mage-check-wheels
"$venv/bin/pip" install -q --force-reinstall --no-deps target/mage-check-wheels/mage_secrets-*.whl
MAGE_SECRETS_REQUIRE_MAGE=1 MAGE_SECRETS_BIN="$PWD/target/debug/mage-secrets" \
  "$venv/bin/python" -m pytest -v python/tests
