"""Turn the inventory and an environment into concrete probe targets."""

from __future__ import annotations

from typing import TypedDict

from vextrus_nb import paths
from vextrus_nb.config import EDGE_ENTRYPOINTS, HA_ENDPOINTS, Component, Environment, Inventory
from vextrus_nb.probes import ProbeTarget


def endpoints(env: Environment, inventory: Inventory) -> dict[str, tuple[str, int]]:
    """(host, port) of every component; the sandbox's come from its state file."""
    if env.sandbox:
        from vextrus_nb.sandbox_state import SandboxState

        state = SandboxState.load(paths.sandbox_dir())
        return {name: (env.default_host, port) for name, port in state.ports.items()}
    where = {
        name: (env.hosts.get(name, env.default_host), env.ports.get(name, component.port))
        for name, component in inventory.components.items()
    }
    if "traefik" in where:  # the edge's public entrypoints live where Traefik does
        edge_host = where["traefik"][0]
        for name, port in EDGE_ENTRYPOINTS.items():
            where[name] = (env.hosts.get(name, edge_host), env.ports.get(name, port))
    if env.ha is not None:  # the replica, the pooler, the Sentinels: named like components
        for name, port in HA_ENDPOINTS.items():
            where[name] = (env.hosts.get(name, env.default_host), env.ports.get(name, port))
    return where


def components_in_scope(
    env: Environment, inventory: Inventory, include_dev_tools: bool = False
) -> list[Component]:
    return [
        inventory.components[name]
        for name in inventory.start_order
        if name not in env.exclude and (include_dev_tools or inventory.components[name].kind != "dev_tool")
    ]


class _Common(TypedDict):
    """What every probe target of a component has, whatever its kind."""

    component: str
    host: str
    port: int
    criticality: str


def probe_targets(
    env: Environment,
    inventory: Inventory,
    components: list[Component] | None = None,
    all_health_paths: bool = False,
) -> list[ProbeTarget]:
    """One target per component (its main health check), or one per health path.

    A component is probed in its own protocol (component.probe) when it runs its real server
    and the environment gives the login that protocol needs. A simulated one (env.simulated),
    or one whose login is missing, gets what a simulation answers: its health path, else TCP."""
    where = endpoints(env, inventory)
    targets = []
    for component in components if components is not None else components_in_scope(env, inventory):
        host, port = where[component.name]
        common: _Common = {
            "component": component.name,
            "host": host,
            "port": port,
            "criticality": component.criticality,
        }
        protocol = None if component.name in env.simulated else _protocol_target(env, component, common)
        if protocol is not None:
            targets.append(protocol)
        elif component.health_path and component.probe != "tcp":
            checks = component.health_paths if all_health_paths else {"health": component.health_path}
            targets += [ProbeTarget(kind="http", path=p, check=c, **common) for c, p in checks.items()]
        else:
            targets.append(ProbeTarget(kind="tcp", **common))
    return targets


def _protocol_target(env: Environment, component: Component, common: _Common) -> ProbeTarget | None:
    """The target in the component's own protocol, or None where it takes http/tcp or the login
    it needs is not in the environment."""
    kind = component.probe
    if kind in ("kafka", "zookeeper", "temporal"):  # they take no login
        return ProbeTarget(kind=kind, **common)
    if kind == "postgres" and env.postgres:
        password = env.resolve_secret(env.postgres.password_secret)
        user = env.postgres.user
        return ProbeTarget(kind=kind, database="postgres", user=user, password=password, **common)
    if kind == "redis" and env.redis:
        password = env.resolve_secret(env.redis.password_secret)
        return ProbeTarget(kind=kind, user=env.redis.user, password=password, **common)
    if kind == "amqp" and env.rabbitmq:
        password = env.resolve_secret(env.rabbitmq.password_secret)
        return ProbeTarget(kind=kind, user=env.rabbitmq.user, password=password, **common)
    if kind == "s3" and env.object_store:
        return ProbeTarget(
            kind=kind,
            access_key=env.resolve_secret(env.object_store.access_key_secret),
            secret_key=env.resolve_secret(env.object_store.secret_key_secret),
            **common,
        )
    return None
