"""Temporal, over its own protocol (gRPC, the temporalio client): the platform's namespace is
registered and keeps closed workflows long enough to investigate them.

temporalio is imported with the module, not inside the check: its first import takes about a
second, which inside a check would block the event loop and spend every running check's deadline.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.api.enums.v1 import NamespaceState
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from vextrus_nb.checks.context import CheckContext, describe_error
from vextrus_nb.checks.model import Finding, Outcome, check

# The platform's Temporal namespace (an environment may name its own: deployment.temporal_namespace)
# and the shortest workflow history it keeps: a failed approval workflow is still there to
# investigate after a weekend and a week of triage. Temporal's own default is 1 day.
TEMPORAL_NAMESPACE = "vextrus"
MIN_RETENTION_DAYS = 7


def temporal_namespace(ctx: CheckContext) -> str:
    return ctx.env.deployment.get("temporal_namespace", TEMPORAL_NAMESPACE)


@check(
    "INF-TEMPORAL-NAMESPACE",
    "infrastructure",
    "high",
    title=f"The platform's Temporal namespace is registered, with >= {MIN_RETENTION_DAYS} days retention",
    probes="Temporal DescribeNamespace over gRPC (temporalio client)",
    criterion=f"the namespace exists, is REGISTERED, and keeps closed workflows >= {MIN_RETENTION_DAYS} days",
    remediation="temporal operator namespace create --namespace vextrus --retention 7d "
    "(or `namespace update --retention 7d`); the workflow service reads TEMPORAL_NAMESPACE.",
)
async def temporal_namespace_retention(ctx: CheckContext) -> Outcome:
    if not ctx.in_scope("temporal"):
        return Outcome.not_applicable("the environment runs no Temporal")
    namespace = temporal_namespace(ctx)
    host, port = ctx.where["temporal"]

    async def describe() -> Any:
        client = await Client.connect(
            f"{host}:{port}", namespace=namespace, connect_timeout=timedelta(seconds=ctx.timeout_s)
        )
        request = DescribeNamespaceRequest(namespace=namespace)
        return await client.workflow_service.describe_namespace(
            request, timeout=timedelta(seconds=ctx.timeout_s)
        )

    try:
        described = await ctx.bounded(describe())
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            detail = f"namespace '{namespace}' is not registered"
            return Outcome.of(detail, [Finding("temporal", detail)])
        detail = f"DescribeNamespace failed: {exc.status.name}: {exc.message}"
        return Outcome.of(detail, [Finding("temporal", detail)])
    except Exception as exc:
        detail = f"cannot reach Temporal: {describe_error(exc, ctx.timeout_s)}"
        return Outcome.of(detail, [Finding("temporal", detail)])
    state = NamespaceState.Name(described.namespace_info.state)
    retention = described.config.workflow_execution_retention_ttl.ToTimedelta()
    days = retention / timedelta(days=1)
    evidence = f"namespace '{namespace}' {state.removeprefix('NAMESPACE_STATE_')}, retention {days:g} day(s)"
    findings = []
    if described.namespace_info.state != NamespaceState.NAMESPACE_STATE_REGISTERED:
        findings.append(Finding("temporal", f"namespace '{namespace}' is {state}"))
    if days < MIN_RETENTION_DAYS:
        findings.append(
            Finding(
                "temporal", f"namespace '{namespace}' keeps workflows {days:g} day(s) < {MIN_RETENTION_DAYS}"
            )
        )
    return Outcome.of(evidence, findings)
