"""Loading an io_config the way Mage's ``ConfigFileLoader`` does: the text
Mage's Jinja pass makes (rendered by the Rust library, every value proven),
then PyYAML's ``full_load``, so every value is typed as Mage types it
(``yes`` a bool, ``0755`` an int, a date a ``date``, merge keys merged).
"""

import re

from ._native import MageSecretsError, RenderError


def _error(kind, message, exit_code):
    err = kind(message)
    err.exit_code = exit_code
    return err


def _without_quotes(text):
    # PyYAML quotes what it found in the text; that may be a value.
    return re.sub(r"'[^']*'|\"[^\"]*\"", "…", text or "").strip()


def load(shown, text, source, profile):
    try:
        import yaml
    except ImportError:
        raise _error(
            MageSecretsError,
            "load_io_config loads YAML with PyYAML, as Mage does, and it is not installed: pip install pyyaml",
            2,
        ) from None
    try:
        config = yaml.full_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        place = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        raise _error(
            RenderError,
            f"{shown}{place}: error: the rendered YAML does not load with PyYAML as Mage loads it"
            f" ({_without_quotes(e.problem)}); line and column are in the rendered text",
            1,
        ) from None
    except Exception:
        # A YAMLError without a place, or a value PyYAML cannot construct
        # (a date such as 2024-02-30 raises ValueError): never its text.
        raise _error(
            RenderError,
            f"{shown}: error: the rendered YAML does not load with PyYAML as Mage loads it",
            1,
        ) from None
    if isinstance(config, dict) and profile in config:
        return config[profile]
    # Profile names as the file spells them at the start of a line; a key
    # made by a template is not shown (it may hold a value).
    lines = source.splitlines()

    def spelled(key):
        return any(line.startswith(key + ":") for line in lines)

    names = (
        [k for k, v in config.items() if isinstance(k, str) and isinstance(v, dict) and spelled(k)]
        if isinstance(config, dict)
        else []
    )
    raise _error(
        MageSecretsError,
        f"profile '{profile}' is not in {shown}; profiles: {', '.join(names) or 'none'}",
        2,
    )
