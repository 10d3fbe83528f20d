"""Names of the sandbox services' own credentials (values live in the secrets dir)."""

JWT_KEY_SECRET = "jwt_signing_key"  # the HS256 key auth signs with and every service verifies with


def pg_role_name(service: str) -> str:
    return "svc_" + service.replace("-", "_")


def pg_secret_name(service: str) -> str:
    return f"pg_{service}"


def redis_secret_name(service: str) -> str:
    return f"redis_{service}"
