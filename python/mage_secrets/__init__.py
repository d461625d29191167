"""mage-secrets from Python: Mage's ``get_secret_value`` answered from the
encrypted mage-secrets store, the project renderer, and a one-line switch
that makes a running Mage read its secrets from the same store.

    from mage_secrets import get_secret_value
    password = get_secret_value("pg_password")            # str, or None when not set
    token = get_secret_value("token", pipeline_uuid="etl")  # pipeline scope first

The environment is found as the ``mage-secrets`` command finds it
(``MAGE_DATA_DIR``, ``MAGE_SECRETS_DATABASE``, else ``~/.mage_data``);
``Environment(data_dir=..., database=...)`` names one explicitly.
"""

from ._native import (
    Environment,
    MageSecretsError,
    RenderError,
    SecretNotSetError,
    get_secret_value,
    load_io_config,
    render_project,
    render_str,
)
from ._mage import install_into_mage

__all__ = [
    "Environment",
    "MageSecretsError",
    "RenderError",
    "SecretNotSetError",
    "get_secret_value",
    "install_into_mage",
    "load_io_config",
    "render_project",
    "render_str",
]
