"""RabbitMQ, over its own protocol (AMQP 0-9-1, pika): it accepts the platform's login.

pika blocks: the login runs in a thread through `in_thread` (checks/context.py).
"""

from __future__ import annotations

import pika
import pika.exceptions

from vextrus_nb.checks.context import CheckContext, describe_error, in_thread
from vextrus_nb.checks.model import Finding, Outcome, check


def amqp_login(host: str, port: int, user: str, password: str, timeout_s: float) -> str:
    """Open and close an AMQP connection; the server's product and version."""
    parameters = pika.ConnectionParameters(
        host,
        port,
        credentials=pika.PlainCredentials(user, password),
        connection_attempts=1,
        socket_timeout=timeout_s,
        stack_timeout=timeout_s,
        blocked_connection_timeout=timeout_s,
    )
    connection = pika.BlockingConnection(parameters)
    try:
        properties = connection._impl.server_properties
        product, version = properties.get("product", b"?"), properties.get("version", b"?")
        decoded = [p.decode() if isinstance(p, bytes) else str(p) for p in (product, version)]
        return " ".join(decoded)
    finally:
        connection.close()


@check(
    "INF-RABBITMQ",
    "infrastructure",
    "medium",
    title="RabbitMQ accepts the platform's AMQP login",
    probes="an AMQP 0-9-1 connection with the environment's RabbitMQ user (pika)",
    criterion="the connection opens (login accepted) within the probe timeout",
    remediation="Check rabbitmq's log; `rabbitmqctl authenticate_user <user> <password>`; make sure the "
    "services' credentials are the current ones (secrets rotation).",
)
async def rabbitmq_login(ctx: CheckContext) -> Outcome:
    if not ctx.in_scope("rabbitmq"):
        return Outcome.not_applicable("the environment runs no RabbitMQ")
    login = ctx.env.rabbitmq
    if login is None:
        return Outcome.not_applicable("the environment names no RabbitMQ login (rabbitmq)")
    host, port = ctx.where["rabbitmq"]
    password = ctx.secret(login.password_secret)
    try:
        server = await in_thread(ctx, lambda: amqp_login(host, port, login.user, password, ctx.timeout_s))
    except (pika.exceptions.ProbableAuthenticationError, pika.exceptions.AuthenticationError):
        detail = f"login refused for user '{login.user}'"
        return Outcome.of(detail, [Finding("rabbitmq", detail)])
    except Exception as exc:
        detail = (
            f"no AMQP connection: {describe_error(exc, ctx.timeout_s) if str(exc) else type(exc).__name__}"
        )
        return Outcome.of(detail, [Finding("rabbitmq", detail)])
    return Outcome.of(f"AMQP login as '{login.user}' accepted by {server}")
