"""`vextrus-nb alert-receiver`: Alertmanager's webhook endpoint (tornado, which JupyterLab
already brings). It answers within a second whatever the runbooks do: it only starts workflows.

200: the firing alerts routed (each started, or already started for this firing); resolved
notifications start nothing. 400: not a version-4 payload. 422: a firing alert no route takes,
or a route's run refused (the body says why). 503: Temporal cannot be reached."""

from __future__ import annotations

import json
import logging
from typing import Any

import tornado.web
from temporalio.client import Client

from vextrus_nb.errors import ControlStoreUnavailable, VextrusError
from vextrus_nb.service import alerts
from vextrus_nb.service.client import submit_for_alert

log = logging.getLogger(__name__)


class WebhookHandler(tornado.web.RequestHandler):
    def initialize(self, client: Client, routes: alerts.Routes) -> None:
        self.client, self.routes = client, routes

    async def post(self) -> None:
        try:
            notification = alerts.parse(self.request.body)
        except ValueError as exc:
            return self._answer(400, {"error": str(exc)})
        started: dict[str, str] = {}
        problems: list[str] = []
        for alert in notification.alerts:
            if alert.status != "firing":
                continue  # a resolved alert starts nothing
            try:
                routed = alerts.route(alert, self.routes)
                if routed is None:
                    problems.append(f"no route for {alert.labels.get('alertname', '?')} {alert.labels}")
                    continue
                started[routed.workflow_id] = await submit_for_alert(self.client, routed)
            except ControlStoreUnavailable as exc:
                return self._answer(503, {"error": str(exc)})
            except VextrusError as exc:
                problems.append(f"{alert.labels.get('alertname', '?')}: {exc}")
        for run, outcome in started.items():
            log.info("alert run %s: %s", run, outcome)
        if problems:
            return self._answer(422, {"runs": started, "refused": problems})
        return self._answer(200, {"runs": started})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))


def application(client: Client, routes: alerts.Routes) -> tornado.web.Application:
    return tornado.web.Application([(r"/.*", WebhookHandler, {"client": client, "routes": routes})])
