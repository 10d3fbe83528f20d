"""Runbooks as the team's service on Temporal: workers per environment, submitted runs.

workflows.py holds the workflow (deterministic: it only orders activities and waits);
activities.py runs a runbook through the same runner as `vextrus-nb run`, heartbeating;
client.py submits, waits and lists; worker.py is `vextrus-nb worker`. Temporal does the
queueing, the retries we forbid, the timeouts and the history: nothing here reimplements them.
"""
