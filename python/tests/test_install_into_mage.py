"""install_into_mage with a stand-in for Mage's module layout (the real
mage-ai==0.9.80 is tested by test_real_mage.py in the longer check).

The stand-in has what the switch relies on: the secrets module with Mage's
two functions, a template-variables function that imports
`get_secret_value` from it at each call (as Mage's `get_template_vars`
does), and a module that imported the helper by name at import time.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

FILES = {
    "mage_ai/__init__.py": "",
    "mage_ai/data_preparation/__init__.py": "",
    "mage_ai/data_preparation/shared/__init__.py": "",
    "mage_ai/data_preparation/shared/secrets.py": """
        def get_secret_value(name, entity=None, pipeline_uuid=None, project_uuid=None, repo_name=None, **kwargs):
            return "from Mage's own store"

        def get_secret_value_db_safe(name, **kwargs):
            return get_secret_value(name, **kwargs)
    """,
    "mage_ai/data_preparation/shared/utils.py": """
        def get_template_vars():
            from mage_ai.data_preparation.shared.secrets import get_secret_value
            return dict(mage_secret_var=get_secret_value)
    """,
    "mage_ai/early.py": """
        from mage_ai.data_preparation.shared.secrets import get_secret_value
    """,
}

SCRIPT = """
import json, sys
import mage_secrets
order = sys.argv[1]
if order == "before":
    print(json.dumps(mage_secrets.install_into_mage()), file=sys.stderr)
import mage_ai.early
from mage_ai.data_preparation.shared import secrets, utils
if order == "after":
    print(json.dumps(mage_secrets.install_into_mage()), file=sys.stderr)
mage_secret_var = utils.get_template_vars()["mage_secret_var"]
print(json.dumps({
    "helper": secrets.get_secret_value("secret1"),
    "template": mage_secret_var("secret1"),
    "early": mage_ai.early.get_secret_value("secret1"),
    "db_safe": secrets.get_secret_value_db_safe("secret1", suppress_warning=True),
    "pipeline": secrets.get_secret_value("token", pipeline_uuid="etl"),
    "missing": secrets.get_secret_value("secret3", suppress_warning=True),
}))
"""


@pytest.fixture
def fake_mage(tmp_path):
    root = tmp_path / "fake-mage"
    for path, text in FILES.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(textwrap.dedent(text))
    return root


@pytest.mark.parametrize("order", ["before", "after"])
def test_mage_resolves_from_our_store_whether_installed_before_or_after_import(seed, fake_mage, order):
    _, prod = seed
    prod.set("token", "etl token", pipeline="etl")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(fake_mage)] + sys.path)
    env["MAGE_DATA_DIR"] = str(prod.data_dir)
    env["MAGE_SECRETS_DATABASE"] = prod.database
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, order], capture_output=True, env=env, text=True
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "helper": "real production secret",
        "template": "real production secret",
        "early": "real production secret",
        "db_safe": "real production secret",
        "pipeline": "etl token",
        "missing": None,
    }
    # Patched now when Mage was loaded, on import when it was not.
    assert done.stderr.strip() == ("false" if order == "before" else "true")


def test_without_install_mage_keeps_its_own_store(seed, fake_mage):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(fake_mage)] + sys.path)
    done = subprocess.run(
        [sys.executable, "-c", "from mage_ai.data_preparation.shared.secrets import get_secret_value as g; print(g('secret1'))"],
        capture_output=True, env=env, text=True,
    )
    assert done.stdout == "from Mage's own store\n"
