"""Turn the inventory and an environment into concrete probe targets."""

from __future__ import annotations

from vextrus_nb import paths
from vextrus_nb.config import EDGE_ENTRYPOINTS, Component, Environment, Inventory
from vextrus_nb.probes import ProbeTarget


def endpoints(env: Environment, inventory: Inventory) -> dict[str, tuple[str, int]]:
    """(host, port) of every component; the sandbox's come from its state file."""
    if env.sandbox:
        from vextrus_nb.local_platform import SandboxState

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
    return where


def components_in_scope(
    env: Environment, inventory: Inventory, include_dev_tools: bool = False
) -> list[Component]:
    return [
        inventory.components[name]
        for name in inventory.start_order
        if name not in env.exclude and (include_dev_tools or inventory.components[name].kind != "dev_tool")
    ]


def probe_targets(
    env: Environment,
    inventory: Inventory,
    components: list[Component] | None = None,
    all_health_paths: bool = False,
) -> list[ProbeTarget]:
    """One target per component (its main health check), or one per health path."""
    where = endpoints(env, inventory)
    targets = []
    for component in components if components is not None else components_in_scope(env, inventory):
        host, port = where[component.name]
        common = {
            "component": component.name,
            "host": host,
            "port": port,
            "criticality": component.criticality,
        }
        if component.probe == "postgres" and env.postgres:
            targets.append(
                ProbeTarget(
                    kind="postgres",
                    database="postgres",
                    user=env.postgres.user,
                    password=env.resolve_secret(env.postgres.password_secret),
                    **common,
                )
            )
        elif component.probe == "redis" and env.redis:
            targets.append(
                ProbeTarget(
                    kind="redis",
                    user=env.redis.user,
                    password=env.resolve_secret(env.redis.password_secret),
                    **common,
                )
            )
        elif component.probe == "http":
            checks = component.health_paths if all_health_paths else {"health": component.health_path}
            targets += [ProbeTarget(kind="http", path=p, check=c, **common) for c, p in checks.items()]
        else:
            targets.append(ProbeTarget(kind="tcp", **common))
    return targets
