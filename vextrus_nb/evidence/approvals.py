"""Signed approvals of a run: what an approver signs, and the check `ledger verify` makes.

An approval is an Ed25519 signature (the key kind the ledger already signs with) over the run
id, the runbook, the environment and the sha256 of the run's effective parameters, so an
approval given for other parameters, another run or another environment does not count.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from vextrus_nb.errors import ConfigError


def parameters_hash(parameters: dict[str, Any]) -> str:
    """The sha256 of the parameters in canonical JSON: what an approval is bound to."""
    canonical = json.dumps(parameters, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def message(run_id: str, runbook: str, env: str, params_hash: str) -> bytes:
    return f"vextrus-approval|{run_id}|{runbook}|{env}|{params_hash}".encode()


def sign(key_pem: bytes, signed: bytes) -> str:
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except ValueError as exc:
        raise ConfigError(f"not a PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError("an approval key must be Ed25519")
    return base64.b64encode(key.sign(signed)).decode()


def is_valid(public_pem: bytes, signed: bytes, signature: str) -> bool:
    try:
        key = serialization.load_pem_public_key(public_pem)
        if not isinstance(key, Ed25519PublicKey):
            return False
        key.verify(base64.b64decode(signature), signed)
    except (InvalidSignature, ValueError):
        return False
    return True


def public_pem(private_pem: bytes) -> bytes:
    key = serialization.load_pem_private_key(private_pem, password=None)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def check_entry(entry: dict[str, Any], keys_of: Any, required_of: Any = lambda entry: 0) -> str:
    """ "" when every approval an entry records verifies with its environment's key for that
    approver (`keys_of(env) -> {name: public PEM bytes}`), else what is wrong. For a run that
    executed, each approval must also be over the parameters the entry says it ran with, by
    distinct approvers, at least as many as its environment requires (`required_of(entry)`)."""
    submitted = entry.get("submitted") or {}
    decisions = submitted.get("approvals") or []
    executed = entry.get("executed_by") == "vextrus-nb run"
    required = required_of(entry) if executed else 0
    names = [d.get("name") for d in decisions]
    if required and len(set(names)) < required:
        return f"ran with {len(set(names))} distinct approvals where '{entry.get('env')}' requires {required}"
    if not decisions:
        return ""
    keys = keys_of(entry.get("env", ""))
    ran_with = parameters_hash(entry.get("parameters") or {})
    for decision in decisions:
        key = keys.get(decision.get("name"))
        if key is None:
            return f"approval by {decision.get('name')!r}: no such approver for '{entry.get('env')}'"
        if executed and decision.get("params_hash") != ran_with:
            return f"approval by {decision.get('name')} was given for other parameters than the run's"
        signed = message(entry["run_id"], entry["runbook"], entry["env"], decision.get("params_hash", ""))
        if not is_valid(key, signed, decision.get("signature", "")):
            return f"approval by {decision.get('name')} does not verify with their key"
    return ""


def environment_keys(env: str) -> dict[str, bytes]:
    """The approvers' public keys an environment declares now, by name."""
    from vextrus_nb.config import load_environment

    policy = load_environment(env).approvals
    if policy is None:
        return {}
    return {name: policy.key_path(name).read_bytes() for name in policy.approvers}


def checker() -> Any:
    """check_entry with each environment's keys and policy read once."""
    from vextrus_nb.config import load_environment

    keys: dict[str, dict[str, bytes]] = {}
    policies: dict[str, Any] = {}

    def keys_of(env: str) -> dict[str, bytes]:
        if env not in keys:
            try:
                keys[env] = environment_keys(env)
            except (ConfigError, OSError):
                keys[env] = {}
        return keys[env]

    def required_of(entry: dict[str, Any]) -> int:
        env = entry.get("env", "")
        if env not in policies:
            try:
                policies[env] = load_environment(env).approvals
            except ConfigError:
                policies[env] = None
        policy = policies[env]
        live = not (entry.get("parameters") or {}).get("dry_run", True)
        if policy is None or not policy.needs(entry.get("runbook", ""), bool(entry.get("destructive")), live):
            return 0
        return int(policy.required)

    return lambda entry: check_entry(entry, keys_of, required_of)


def verify_decisions(
    policy: Any, run_id: str, runbook: str, env: str, parameters: dict[str, Any], requester: str | None,
    decisions: list[dict[str, Any]],
) -> None:  # fmt: skip
    """Raise RunRefused unless `decisions` are enough approvals for this run under `policy`,
    checked with this host's copy of the approvers' keys: distinct approvers, none the requester,
    each signed over the run's id, runbook, environment and the hash of `parameters`."""
    from vextrus_nb.errors import RunRefused

    expected = parameters_hash(parameters)
    counted: set[str] = set()
    for decision in decisions:
        name = decision.get("name", "")
        if name not in policy.approvers or name == requester or name in counted:
            raise RunRefused(f"approval by {name!r} does not count for '{env}'")
        if decision.get("params_hash") != expected:
            raise RunRefused(f"{name}'s approval was given for other parameters than this run's")
        signed = message(run_id, runbook, env, expected)
        if not is_valid(policy.key_path(name).read_bytes(), signed, decision.get("signature", "")):
            raise RunRefused(f"{name}'s approval does not verify with their key on this host")
        counted.add(name)
    if len(counted) < policy.required:
        raise RunRefused(f"'{runbook}' on '{env}' has {len(counted)} of {policy.required} approvals")
