"""API keys: who is calling, as an owner id (a hash of the key, never the key itself).

With no keys configured every caller is ``anonymous``, which is only allowed on loopback.
"""

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass

from pydantic import SecretStr

from core.errors import ConfigurationError
from core.settings import Settings
from service.errors import UnauthorizedError

ANONYMOUS = "anonymous"


def owner_of_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ApiKeys:
    """The configured keys, kept as SecretStr so no repr or log line shows one."""

    keys: tuple[SecretStr, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> "ApiKeys":
        return cls(settings.api_keys)

    @property
    def required(self) -> bool:
        return bool(self.keys)

    def owner_for(self, bearer_token: str | None) -> str:
        """The caller's owner id; raises UnauthorizedError for a missing or unknown key."""
        if not self.required:
            return ANONYMOUS
        if not bearer_token:
            raise UnauthorizedError("send your API key as 'Authorization: Bearer <key>'")
        given = bearer_token.encode()
        # Compare against every key, without stopping early, so timing says nothing about which matched.
        matches = [hmac.compare_digest(given, key.get_secret_value().encode()) for key in self.keys]
        if not any(matches):
            raise UnauthorizedError("unknown API key")
        return owner_of_key(bearer_token)


def check_bind_is_safe(settings: Settings, api_keys: ApiKeys) -> None:
    """Refuse to serve without API keys anywhere but on loopback."""
    if not api_keys.required and not is_loopback(settings.host):
        raise ConfigurationError(
            f"MIMICMOTION_API_KEYS is empty, which is allowed only on loopback, but the gateway binds to "
            f"{settings.host}; set MIMICMOTION_API_KEYS or bind to 127.0.0.1"
        )
