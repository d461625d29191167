"""Making Mage itself read secrets from mage-secrets' store.

Mage resolves a secret in two places, both in one module,
``mage_ai.data_preparation.shared.secrets``:

- ``get_secret_value``: the helper Mage's code blocks import, and the
  function Mage passes to Jinja as ``mage_secret_var`` whenever it renders
  ``io_config.yaml``, ``metadata.yaml``, pipeline and block YAML and dbt
  ``profiles.yml`` (``mage_ai.data_preparation.shared.utils.get_template_vars``
  imports it from that module at each call);
- ``get_secret_value_db_safe``: the same, used by Mage's AWS settings.

``install_into_mage`` replaces both in that module, and in every module that
already imported them by name. When Mage has not been imported yet it waits
for it: the replacement happens the moment the module is imported, so the
call can sit in a ``.pth`` file or ``sitecustomize`` and cost nothing in
processes that never load Mage.
"""

import importlib.abc
import sys
import threading

from . import _native

MAGE_SECRETS_MODULE = "mage_ai.data_preparation.shared.secrets"

_lock = threading.Lock()
_hook = None


def _get_secret_value_db_safe(name, **kwargs):
    """Mage's ``get_secret_value_db_safe``: no Mage database is needed here."""
    return _native.get_secret_value(name, **kwargs)


def _patch(module):
    replacements = {
        "get_secret_value": _native.get_secret_value,
        "get_secret_value_db_safe": _get_secret_value_db_safe,
    }
    originals = {}
    for attribute, ours in replacements.items():
        theirs = getattr(module, attribute, None)
        if theirs is not None and theirs is not ours:
            originals[attribute] = theirs
        setattr(module, attribute, ours)
    # Modules that ran `from ...secrets import get_secret_value` before now
    # hold Mage's function under their own name.
    for other in list(sys.modules.values()):
        if other is None or other is module:
            continue
        namespace = getattr(other, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        for attribute, theirs in originals.items():
            if namespace.get(attribute) is theirs:
                namespace[attribute] = replacements[attribute]


class _PatchingLoader(importlib.abc.Loader):
    """Runs Mage's module, then replaces its secret functions."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        _patch(module)

    def __getattr__(self, name):
        return getattr(self._loader, name)


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Finds Mage's secrets module through the other finders and wraps its loader."""

    def find_spec(self, fullname, path, target=None):
        if fullname != MAGE_SECRETS_MODULE:
            return None
        for finder in sys.meta_path:
            if finder is self:
                continue
            find_spec = getattr(finder, "find_spec", None)
            if find_spec is None:
                continue
            spec = find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _PatchingLoader(spec.loader)
                return spec
        return None


def install_into_mage():
    """Make Mage resolve ``mage_secret_var(...)`` and ``get_secret_value(...)``
    from mage-secrets' store, in this process.

    If Mage is already imported, its functions are replaced now; otherwise the
    moment Mage's secrets module is imported. Calling it again does nothing
    more. Returns True when Mage was patched now, False when it will be on
    import.
    """
    global _hook
    with _lock:
        module = sys.modules.get(MAGE_SECRETS_MODULE)
        if module is not None:
            _patch(module)
            return True
        if _hook is None:
            _hook = _PatchOnImport()
            sys.meta_path.insert(0, _hook)
        return False
