"""The inventory and environments: the real files load, and every kind of
mistake is an error that names the problem."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from vextrus_nb.config import load_environment, load_inventory
from vextrus_nb.errors import ConfigError, SecretUnavailable

REPO = Path(__file__).resolve().parent.parent

DESIGN_PORTS = {
    "auth": 3001,
    "master-data": 3002,
    "notification": 3003,
    "configuration": 3004,
    "scheduler": 3005,
    "document-generator": 3006,
    "import-export": 3007,
    "file-storage": 3008,
    "audit": 3009,
    "workflow": 3011,
    "rules-engine": 3012,
    "crm": 3013,
    "finance": 3014,
    "hr": 3015,
    "organization": 3016,
    "project-management": 3017,
    "scm": 3018,
    "api-gateway": 4000,
}


def test_inventory_holds_the_whole_catalogue() -> None:
    inventory = load_inventory()
    services = {c.name: c.port for c in inventory.services()}
    assert services == DESIGN_PORTS
    for name in (
        "postgres",
        "redis",
        "zookeeper",
        "kafka",
        "elasticsearch",
        "minio",
        "rabbitmq",
        "eventstore",
        "temporal",
        "traefik",
        "prometheus",
        "grafana",
        "signoz",
    ):
        assert inventory.get(name).kind == "infrastructure"
    assert {c.name for c in inventory.components.values() if c.kind == "dev_tool"} == {
        "adminer",
        "kafka-ui",
        "redis-commander",
        "verdaccio",
    }
    assert set(inventory.get("api-gateway").subgraphs) == {
        "auth",
        "master-data",
        "workflow",
        "rules-engine",
        "finance",
        "organization",
    }
    assert all(c.database for c in inventory.services() if c.name != "api-gateway")


def test_start_order_puts_every_dependency_first_and_follows_the_phases() -> None:
    inventory = load_inventory()
    order = inventory.start_order
    position = {name: i for i, name in enumerate(order)}
    for component in inventory.components.values():
        for dep in component.depends_on:
            assert position[dep] < position[component.name], (dep, component.name)
    assert inventory.phase(6)[0].name == "auth"
    assert [c.name for c in inventory.phase(2)].index("zookeeper") < [
        c.name for c in inventory.phase(2)
    ].index("kafka")
    assert [c.name for c in inventory.phase(8)] == ["api-gateway"]


def _inventory_file(tmp_path: Path, components: dict) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "components": components}))
    return path


def _svc(phase: int, *deps: str) -> dict:
    return {"kind": "service", "port": 3000 + phase, "phase": phase, "depends_on": list(deps)}


def test_dangling_dependency_is_named(tmp_path: Path) -> None:
    path = _inventory_file(tmp_path, {"auth": _svc(6, "postgress")})
    with pytest.raises(ConfigError, match="'auth' depends on unknown component 'postgress'"):
        load_inventory(path)


def test_cycle_is_named(tmp_path: Path) -> None:
    path = _inventory_file(tmp_path, {"a": _svc(6, "b"), "b": _svc(6, "c"), "c": _svc(6, "a")})
    with pytest.raises(ConfigError, match=r"dependency cycle: (a|b|c) -> .* -> .*"):
        load_inventory(path)


def test_dependency_on_a_later_phase_is_refused(tmp_path: Path) -> None:
    path = _inventory_file(tmp_path, {"auth": _svc(6, "gw"), "gw": _svc(8)})
    with pytest.raises(
        ConfigError, match=r"'auth' \(phase 6\) depends on 'gw' which starts later \(phase 8\)"
    ):
        load_inventory(path)


def test_unknown_field_and_bad_port_are_named(tmp_path: Path) -> None:
    path = _inventory_file(tmp_path, {"auth": {**_svc(6), "port": 70000, "colour": "red"}})
    with pytest.raises(ConfigError) as err:
        load_inventory(path)
    assert "components.auth.port" in str(err.value) and "components.auth.colour" in str(err.value)


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text("components:\n  auth: {kind: service\n  port: 1\n")
    with pytest.raises(ConfigError, match=r"malformed YAML in .*inventory.yaml at line \d+"):
        load_inventory(path)


@pytest.fixture
def parameters_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    target = tmp_path / "parameters"
    shutil.copytree(REPO / "parameters", target)
    monkeypatch.setenv("VEXTRUS_PARAMETERS_DIR", str(target))
    return target


def test_real_environments_load() -> None:
    assert load_environment("sandbox").sandbox
    production = load_environment("production")
    assert production.production and production.driver == "kube"


def test_unknown_environment_lists_the_known_ones() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown environment 'prod'; known: production, sandbox, sandbox-gated, staging"
    ):
        load_environment("prod")


def test_literal_secret_value_is_refused(parameters_copy: Path) -> None:
    path = parameters_copy / "environments" / "staging.yaml"
    data = yaml.safe_load(path.read_text())
    data["secrets"]["postgres_password"] = "hunter2-literal"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as err:
        load_environment("staging")
    assert "must be a reference" in str(err.value)
    assert "hunter2-literal" not in str(err.value)


def test_environment_naming_an_unknown_component_is_refused(parameters_copy: Path) -> None:
    path = parameters_copy / "environments" / "staging.yaml"
    data = yaml.safe_load(path.read_text())
    data["hosts"]["finanse"] = "db"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"unknown component.*finanse"):
        load_environment("staging")


def test_missing_secret_is_named_without_a_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VEXTRUS_STAGING_PG_PASSWORD", raising=False)
    env = load_environment("staging")
    with pytest.raises(SecretUnavailable, match="VEXTRUS_STAGING_PG_PASSWORD is not set"):
        env.resolve_secret("postgres_password")
    monkeypatch.setenv("VEXTRUS_STAGING_PG_PASSWORD", "s3cret-from-env")
    assert env.resolve_secret("postgres_password") == "s3cret-from-env"
