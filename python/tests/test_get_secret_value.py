"""get_secret_value: Mage's signature and contract, answered from the store the CLI wrote."""

import inspect

import pytest

import mage_secrets
from mage_secrets import Environment, MageSecretsError, get_secret_value


def test_seed_scenario_dev_and_prod_answer_from_one_database(seed, monkeypatch, capsys):
    dev, prod = seed
    dev.use(monkeypatch)
    assert get_secret_value("secret1") == "sooper dooper secret string"
    assert get_secret_value("secret3") == "dev only secret"
    prod.use(monkeypatch)
    assert get_secret_value("secret1") == "real production secret"
    assert get_secret_value("secret3") is None
    # Mage's own line for a missing secret, naming it, never a value.
    assert capsys.readouterr().out == "WARNING: Could not find secret value for secret secret3.\n"
    assert get_secret_value("secret3", suppress_warning=True) is None
    assert capsys.readouterr().out == ""


def test_explicit_environments_answer_side_by_side(seed):
    dev, prod = seed
    dev_env = Environment(data_dir=str(dev.data_dir), database=dev.database)
    prod_env = Environment(data_dir=str(prod.data_dir), database=prod.database)
    assert dev_env.uuid != prod_env.uuid
    assert dev_env.get_secret_value("secret1") == "sooper dooper secret string"
    assert prod_env.get_secret_value("secret1") == "real production secret"
    assert prod_env.get_secret_value("secret3", suppress_warning=True) is None
    shown = repr(dev_env)
    assert dev_env.uuid in shown and "sooper" not in shown


def test_signature_is_mages():
    # mage_ai.data_preparation.shared.secrets.get_secret_value in mage-ai 0.9.80
    assert str(inspect.signature(get_secret_value)) == (
        "(name, entity=None, pipeline_uuid=None, project_uuid=None, repo_name=None, **kwargs)"
    )


def test_pipeline_scope_is_searched_first_when_pipeline_uuid_is_given(dev, monkeypatch):
    dev.set("token", "global token")
    dev.set("token", "etl token", pipeline="etl")
    dev.set("only_etl", "etl only", pipeline="etl")
    dev.use(monkeypatch)
    assert get_secret_value("token") == "global token"
    assert get_secret_value("token", pipeline_uuid="etl") == "etl token"
    assert get_secret_value("token", "pipeline", "etl") == "etl token"
    assert get_secret_value("token", pipeline_uuid="other") == "global token"
    assert get_secret_value("only_etl", suppress_warning=True) is None
    assert get_secret_value("only_etl", pipeline_uuid="etl") == "etl only"
    # Mage's extra arguments are accepted and do not change the answer.
    assert get_secret_value("token", "global", None, "project", "repo", suppress_warning=True) == "global token"


def test_an_explicit_entity_means_what_it_means_in_mage(dev, monkeypatch):
    dev.set("token", "global token")
    dev.set("token", "etl token", pipeline="etl")
    dev.use(monkeypatch)
    # global (and any, project): the global scope alone, whatever the pipeline.
    for entity in ("global", "GLOBAL", "any", "project"):
        assert get_secret_value("token", entity, "etl") == "global token", entity

    class Entity:  # the shape of Mage's StrEnum member
        value = "pipeline"

    # pipeline: that pipeline's scope alone, no fall-back to global.
    assert get_secret_value("token", Entity(), "etl") == "etl token"
    assert get_secret_value("secret1", "pipeline", "etl", suppress_warning=True) is None
    assert get_secret_value("secret1", pipeline_uuid="etl") == "sooper dooper secret string"
    # A pipeline uuid no scope can have: nothing is set there, as in Mage.
    assert get_secret_value("token", pipeline_uuid="../etl") == "global token"
    assert get_secret_value("token", "pipeline", "../etl", suppress_warning=True) is None


def test_entity_pipeline_without_pipeline_uuid_is_refused(dev, monkeypatch):
    dev.use(monkeypatch)
    with pytest.raises(MageSecretsError, match="needs pipeline_uuid"):
        get_secret_value("secret1", entity="pipeline")
    with pytest.raises(MageSecretsError, match="entity 'team'"):
        get_secret_value("secret1", entity="team")


ADVERSARIAL = [
    'double "quotes" and \\ backslashes \\"',
    "single 'quotes' ''",
    "line one\nline two\n",
    "crlf\r\nline\r\n",
    "\ttabs\t and trailing spaces   ",
    "   leading spaces",
    "{{ mage_secret_var('secret1') }} {% if x %}{# c #}",
    "# not a comment: and: colons - dashes",
    "key: value\n- item\n? q\n",
    "ünïcödé ☃ 𝄞 emoji 🔐 and \u2028 separators \u00a0",
    "\x01\x02 control \x1b[31m escape \x7f",
    "",
    "x" * 100_000,
]


@pytest.mark.parametrize("value", ADVERSARIAL, ids=range(len(ADVERSARIAL)))
def test_adversarial_values_round_trip_exactly(dev, monkeypatch, value):
    if value == "":
        dev.run("set", "odd", "--allow-empty", "--from-file", "/dev/null", check=False)
        stored = dev.run("get", "odd", check=False)
        if stored.returncode != 0:
            pytest.skip("the CLI does not store empty values here")
    else:
        dev.set("odd", value)
    dev.use(monkeypatch)
    assert get_secret_value("odd") == value
    # The same bytes the CLI's `get` prints (minus its one newline).
    assert dev.run("get", "odd").stdout == value.encode("utf-8") + b"\n"


def test_a_missing_key_refuses_as_the_cli_does(dev, monkeypatch):
    (dev.data_dir / "mage-secrets" / "key").unlink()
    cli = dev.run("get", "secret1", check=False)
    dev.use(monkeypatch)
    with pytest.raises(MageSecretsError) as raised:
        get_secret_value("secret1")
    assert cli.returncode == raised.value.exit_code == 2
    assert cli.stderr.decode().strip() == f"error: {raised.value}"
    assert "key file" in str(raised.value) and "missing" in str(raised.value)


def test_a_data_dir_without_an_environment_is_refused_not_created(tmp_path, monkeypatch):
    empty = tmp_path / "nothing-here"
    monkeypatch.setenv("MAGE_DATA_DIR", str(empty))
    monkeypatch.delenv("MAGE_SECRETS_DATABASE", raising=False)
    with pytest.raises(MageSecretsError, match="has no mage-secrets environment") as raised:
        get_secret_value("secret1")
    assert raised.value.exit_code == 2
    assert not (empty / "mage-secrets" / "key").exists()


def test_a_name_the_store_cannot_hold_is_not_set_as_in_mage(dev, monkeypatch, capsys):
    # Mage takes any name and answers None; so does a store that cannot
    # hold it (the CLI refuses such a name outright).
    assert dev.run("get", "not-a-name", check=False).returncode == 2
    dev.use(monkeypatch)
    assert get_secret_value("not-a-name") is None
    assert "WARNING: Could not find secret value for secret not-a-name." in capsys.readouterr().out


def test_a_change_by_another_process_is_seen_by_the_next_call(dev, monkeypatch):
    dev.use(monkeypatch)
    assert get_secret_value("secret1") == "sooper dooper secret string"
    dev.set("secret1", "changed")
    assert get_secret_value("secret1") == "changed"
    dev.run("delete", "secret1")
    assert get_secret_value("secret1", suppress_warning=True) is None


def test_a_rotated_key_is_followed(dev, monkeypatch):
    dev.use(monkeypatch)
    assert get_secret_value("secret1") == "sooper dooper secret string"
    dev.run("rotate-key")
    assert get_secret_value("secret1") == "sooper dooper secret string"


def test_the_package_exports_what_it_documents():
    for name in mage_secrets.__all__:
        assert hasattr(mage_secrets, name), name


def test_a_key_from_the_environment_needs_no_data_dir(seed, monkeypatch, tmp_path):
    _, prod = seed
    key = (prod.data_dir / "mage-secrets" / "key").read_text()
    uuid = (prod.data_dir / "mage-secrets" / "uuid").read_text().strip()
    nowhere = tmp_path / "no-data-dir"
    monkeypatch.setenv("MAGE_DATA_DIR", str(nowhere))
    monkeypatch.setenv("MAGE_SECRETS_DATABASE", prod.database)
    monkeypatch.setenv("MAGE_SECRETS_KEY", key)
    monkeypatch.setenv("MAGE_SECRETS_ENVIRONMENT", uuid)
    assert get_secret_value("secret1") == "real production secret"
    assert get_secret_value("secret3", suppress_warning=True) is None
    assert not nowhere.exists()
    dev_key = (seed[0].data_dir / "mage-secrets" / "key").read_text()
    monkeypatch.setenv("MAGE_SECRETS_KEY", dev_key)
    with pytest.raises(MageSecretsError, match=f"does not open environment {uuid}") as raised:
        get_secret_value("secret1")
    assert dev_key.strip() not in str(raised.value)
