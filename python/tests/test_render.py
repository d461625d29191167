"""render_str, render_project and load_io_config: the library's renderer from Python."""

import pytest

from mage_secrets import (
    Environment,
    MageSecretsError,
    RenderError,
    load_io_config,
    render_project,
    render_str,
)


def test_render_str_resolves_in_the_process_environment(seed, monkeypatch):
    dev, prod = seed
    template = "pw: {{ mage_secret_var('secret1') }}\n"
    dev.use(monkeypatch)
    assert render_str(template) == "pw: sooper dooper secret string"
    prod.use(monkeypatch)
    assert render_str(template) == "pw: real production secret"


def test_render_str_pipeline_scope(dev, monkeypatch):
    dev.set("token", "global")
    dev.set("token", "etl", pipeline="etl")
    dev.use(monkeypatch)
    assert render_str("{{ mage_secret_var('token') }}") == "global"
    assert render_str("{{ mage_secret_var('token') }}", pipeline="etl") == "etl"


def test_render_str_missing_secret_is_an_error_naming_it_unless_lenient(seed, monkeypatch):
    _, prod = seed
    prod.use(monkeypatch)
    with pytest.raises(RenderError) as raised:
        render_str("a: {{ mage_secret_var('secret3') }}")
    message = str(raised.value)
    assert "secret3" in message and "<string>:1:" in message
    assert raised.value.exit_code == 1
    assert render_str("a: {{ mage_secret_var('secret3') }}", lenient=True) == "a: None"


def test_errors_never_hold_a_value(dev, monkeypatch):
    dev.set("breaks_yaml", "x\n  bad: [")
    dev.use(monkeypatch)
    with pytest.raises(MageSecretsError) as raised:
        render_str("{% for x in [1] %}a: {{ mage_secret_var('breaks_yaml') | indent }}\n{% endfor %}b: {{ undefined_thing(")
    for text in (str(raised.value), repr(raised.value)):
        assert "bad: [" not in text


def project(tmp_path):
    root = tmp_path / "project"
    (root / "pipelines" / "etl").mkdir(parents=True)
    (root / "io_config.yaml").write_text(
        "version: 0.1.1\n"
        "default:\n"
        "  POSTGRES_PASSWORD: \"{{ mage_secret_var('secret1') }}\"\n"
        "  POSTGRES_PORT: 5432\n"
        "dev:\n"
        "  POSTGRES_PASSWORD: \"{{ mage_secret_var('secret3') }}\"\n"
    )
    # Mage renders these two fields of a pipeline's metadata.
    (root / "pipelines" / "etl" / "metadata.yaml").write_text(
        "executor_type: \"{{ variables('executor') }}\"\nexecutor_config:\n  namespace: \"{{ mage_secret_var('token') }}\"\n"
    )
    return root


def test_render_project_in_memory(dev, monkeypatch, tmp_path):
    dev.set("token", "etl token", pipeline="etl")
    root = project(tmp_path)
    dev.use(monkeypatch)
    files = render_project(str(root))
    assert files["pipelines/etl/metadata.yaml"] == (
        "executor_type: \"{{ variables('executor') }}\"\nexecutor_config:\n  namespace: \"etl token\"\n"
    )
    assert "sooper dooper secret string" in files["io_config.yaml"]
    assert sorted(p.name for p in root.rglob("*")) == ["etl", "io_config.yaml", "metadata.yaml", "pipelines"]


def test_render_project_failure_lists_every_problem(seed, monkeypatch, tmp_path):
    _, prod = seed
    root = project(tmp_path)
    prod.use(monkeypatch)
    with pytest.raises(RenderError) as raised:
        render_project(str(root))
    message = str(raised.value)
    assert "io_config.yaml:6:" in message and "secret3" in message
    assert "pipelines/etl/metadata.yaml:3:" in message and "token" in message


def test_load_io_config_returns_one_rendered_profile(seed, tmp_path):
    dev, prod = seed
    root = project(tmp_path)
    env = Environment(data_dir=str(dev.data_dir), database=dev.database)
    assert env.load_io_config(str(root), "default") == {
        "POSTGRES_PASSWORD": "sooper dooper secret string",
        "POSTGRES_PORT": 5432,
    }
    assert env.load_io_config(str(root / "io_config.yaml"), "dev") == {
        "POSTGRES_PASSWORD": "dev only secret"
    }
    with pytest.raises(MageSecretsError, match="profile 'staging' is not in .*io_config.yaml; profiles: default, dev"):
        env.load_io_config(str(root), "staging")
    prod_env = Environment(data_dir=str(prod.data_dir), database=prod.database)
    with pytest.raises(RenderError, match="secret3"):
        prod_env.load_io_config(str(root), "dev")


def test_module_level_load_io_config(dev, monkeypatch, tmp_path):
    root = project(tmp_path)
    dev.use(monkeypatch)
    assert load_io_config(str(root))["POSTGRES_PASSWORD"] == "sooper dooper secret string"


TYPED = """\
default:
  PASSWORD: "{{ mage_secret_var('secret1') }}"
  FLAG_YES: yes
  FLAG_OFF: off
  OCTAL: 0755
  NOT_OCTAL: 0o755
  UNDERSCORED: 1_000
  SEXAGESIMAL: 1:20
  NOT_FLOAT: 1e3
  DAY: 2024-01-31
  WHEN: 2024-01-31 10:20:30
  BIG: 123456789012345678901234567890
  BINARY: !!binary aGVsbG8=
  SAME: 1
  SAME: 2
  BASE: &base {host: h, port: 1}
  MERGED:
    <<: *base
    port: 2
"""


def test_load_io_config_types_values_as_mages_pyyaml_does(dev, tmp_path):
    yaml = pytest.importorskip("yaml")
    root = tmp_path / "typed"
    root.mkdir()
    (root / "io_config.yaml").write_text(TYPED)
    env = Environment(data_dir=str(dev.data_dir), database=dev.database)
    got = env.load_io_config(str(root), "default")
    # What Mage's ConfigFileLoader makes of the same text with the value in.
    want = yaml.full_load(
        TYPED.replace("{{ mage_secret_var('secret1') }}", "sooper dooper secret string")
    )["default"]
    assert got == want
    assert got["FLAG_YES"] is True and got["OCTAL"] == 493 and got["MERGED"] == {"host": "h", "port": 2}


def test_load_io_config_reads_the_file_it_is_given(dev, tmp_path):
    root = project(tmp_path)
    (root / "other.yaml").write_text("default:\n  PW: \"{{ mage_secret_var('secret1') }}\"\n")
    env = Environment(data_dir=str(dev.data_dir), database=dev.database)
    assert env.load_io_config(str(root / "other.yaml")) == {"PW": "sooper dooper secret string"}
    with pytest.raises(MageSecretsError, match="no io_config.yaml in"):
        env.load_io_config(str(tmp_path))


def test_load_io_config_errors_hold_no_value(dev, tmp_path):
    root = tmp_path / "keys"
    root.mkdir()
    (root / "io_config.yaml").write_text(
        "default:\n  A: 1\n\"{{ mage_secret_var('secret1') }}\":\n  B: 2\n"
    )
    env = Environment(data_dir=str(dev.data_dir), database=dev.database)
    with pytest.raises(MageSecretsError) as raised:
        env.load_io_config(str(root), "nope")
    assert "profiles: default" in str(raised.value)
    assert "sooper" not in str(raised.value)
    # A value PyYAML cannot construct (Mage's load fails the same way).
    (root / "io_config.yaml").write_text("default:\n  DAY: 2024-02-30\n")
    with pytest.raises(RenderError) as raised:
        env.load_io_config(str(root))
    assert "does not load with PyYAML" in str(raised.value)
