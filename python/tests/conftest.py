"""Fixtures: a store written by the mage-secrets command itself.

The binary is `MAGE_SECRETS_BIN`, else the workspace's `target/debug/mage-secrets`.
"""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def binary():
    path = os.environ.get("MAGE_SECRETS_BIN") or str(ROOT / "target" / "debug" / "mage-secrets")
    if not os.access(path, os.X_OK):
        pytest.fail(f"mage-secrets binary not found at {path}: run `cargo build` or set MAGE_SECRETS_BIN")
    return path


class Cli:
    """Runs the real CLI against one data dir and database."""

    def __init__(self, data_dir, database):
        self.data_dir = Path(data_dir)
        self.database = str(database)

    def run(self, *args, stdin=b"", check=True):
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAGE_")}
        env["HOME"] = str(self.data_dir.parent)
        result = subprocess.run(
            [binary(), "--data-dir", str(self.data_dir), "--database", self.database, *args],
            input=stdin,
            capture_output=True,
            env=env,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"mage-secrets {args} failed: {result.stderr.decode()}")
        return result

    def set(self, name, value, pipeline=None, tmp=None):
        """Stores `value` byte for byte (through --from-file)."""
        path = self.data_dir.parent / f".value-{name}"
        path.write_bytes(value.encode("utf-8"))
        args = ["set", name, "--from-file", str(path)]
        if pipeline:
            args += ["--pipeline", pipeline]
        self.run(*args)
        path.unlink()

    def use(self, monkeypatch):
        """Points the process environment at this environment, as Mage's would be."""
        monkeypatch.setenv("MAGE_DATA_DIR", str(self.data_dir))
        monkeypatch.setenv("MAGE_SECRETS_DATABASE", self.database)


@pytest.fixture
def seed(tmp_path):
    """The seed scenario: dev and prod, two data dirs sharing one database."""
    database = tmp_path / "shared.db"
    dev = Cli(tmp_path / "dev", database)
    prod = Cli(tmp_path / "prod", database)
    dev.set("secret1", "sooper dooper secret string")
    dev.set("secret3", "dev only secret")
    prod.set("secret1", "real production secret")
    return dev, prod


@pytest.fixture
def dev(seed):
    return seed[0]
