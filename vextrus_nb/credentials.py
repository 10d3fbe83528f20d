"""Names of the services' own credentials, the same in every environment (values live in its secret
store): the manifests, the rotation catalogue and the sandbox all name them from here."""

JWT_KEY_SECRET = "jwt_signing_key"  # the HS256 key auth signs with and every service verifies with
# The load test's user (resilience/load logs in as it, as the reference plan's week 7 script does).
LOAD_USER = "loadtest@vextrus.local"
LOAD_USER_SECRET = "loadtest_password"


def pg_role_name(service: str) -> str:
    return "svc_" + service.replace("-", "_")


def pg_alternate_role_name(service: str) -> str:
    """The second login of the alternating-users strategy: a member of the service's role."""
    return pg_role_name(service) + "_alt"


def split_login(value: str, default_user: str) -> tuple[str, str]:
    """A database credential is a password, or `user:password` once it rotates with
    alternating users (passwords here are letters, digits, '-' and '_': never a ':')."""
    user, colon, password = value.partition(":")
    return (user, password) if colon else (default_user, value)


def pg_secret_name(service: str) -> str:
    return f"pg_{service}"


def redis_secret_name(service: str) -> str:
    return f"redis_{service}"


def acl_user_name(service: str) -> str:
    """The service's Redis ACL user."""
    return f"svc-{service}"
