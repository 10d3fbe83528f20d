"""Resilience engines: the load generator (k6) driven from typed plans, its results, and the
load baseline kept in the evidence ledger. No runbook is imported here."""
