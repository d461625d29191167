"""The real mage-ai==0.9.80 reads our store after install_into_mage().

Needs mage-ai installed next to mage_secrets; `python/check-with-mage.sh`
makes such a throwaway environment and runs this file (the longer check).
Elsewhere it is skipped, saying so.
"""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

if importlib.util.find_spec("mage_ai") is None:
    if os.environ.get("MAGE_SECRETS_REQUIRE_MAGE"):
        pytest.fail("mage-ai is not installed here but MAGE_SECRETS_REQUIRE_MAGE is set", pytrace=False)
    pytest.skip(
        "mage-ai is not installed in this Python; run python/check-with-mage.sh for the test against mage-ai==0.9.80",
        allow_module_level=True,
    )

SCRIPT = """
import json, sys
import mage_secrets
order, io_config = sys.argv[1], sys.argv[2]
if order == "before":
    mage_secrets.install_into_mage()
from mage_ai.io.config import ConfigFileLoader
from mage_ai.data_preparation.shared.secrets import get_secret_value
if order == "after":
    mage_secrets.install_into_mage()
    from mage_ai.data_preparation.shared.secrets import get_secret_value
import mage_ai
config = ConfigFileLoader(io_config, "default").config
print(json.dumps({
    "version": mage_ai.__version__ if hasattr(mage_ai, "__version__") else None,
    "config": config,
    "helper": get_secret_value("secret1"),
    "pipeline": get_secret_value("token", pipeline_uuid="etl"),
    "missing": get_secret_value("secret3", suppress_warning=True),
}))
"""


@pytest.mark.parametrize("order", ["before", "after"])
def test_mage_config_file_loader_and_helper_read_our_store(seed, tmp_path, order):
    _, prod = seed
    prod.set("token", "etl token", pipeline="etl")
    prod.set("pg_user", "etl_user")
    project = tmp_path / "project"
    project.mkdir()
    io_config = project / "io_config.yaml"
    io_config.write_text(
        "version: 0.1.1\n"
        "default:\n"
        "  POSTGRES_USER: \"{{ mage_secret_var('pg_user') }}\"\n"
        "  POSTGRES_PASSWORD: \"{{ mage_secret_var('secret1') }}\"\n"
        "  POSTGRES_HOST: \"{{ env_var('PGHOST_FOR_TEST') }}\"\n"
    )
    env = dict(os.environ)
    env.update(
        MAGE_DATA_DIR=str(prod.data_dir),
        MAGE_SECRETS_DATABASE=prod.database,
        MAGE_REPO_PATH=str(project),
        PGHOST_FOR_TEST="db.internal",
    )
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, order, str(io_config)],
        capture_output=True, env=env, text=True, cwd=project, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["config"] == {
        "POSTGRES_USER": "etl_user",
        "POSTGRES_PASSWORD": "real production secret",
        "POSTGRES_HOST": "db.internal",
    }
    assert result["helper"] == "real production secret"
    assert result["pipeline"] == "etl token"
    assert result["missing"] is None
