"""The storage connection an app setting names, read by the Functions host's rules.

One reader for both the app (jobs/) and the local host (devhost/): it imports neither, so the
host still loads any app, and the two cannot drift apart.

A connection is either a connection string (the setting's own value) or identity-based: the
`<name>__accountName` setting, or one `<name>__<service>ServiceUri` per service, with
`<name>__credential=managedidentity` and `<name>__clientId` for a user-assigned identity.
A connection string always wins. For blob and queue the account name wins over the service's
own URI, as in the extension's `StorageClientProvider.TryGetServiceUri` (Azure/azure-sdk-for-net,
sdk/storage/Microsoft.Azure.WebJobs.Extensions.Storage.Common/src/Shared/StorageClientProvider.cs).
For table the service's own URI wins, as in the host's `StorageServiceUriOptions.GetTableServiceUri`
(Azure/azure-functions-host, src/WebJobs.Script/StorageProvider/StorageServiceUriOptions.cs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

from azure.core.credentials import TokenCredential

Service = Literal["blob", "queue", "table"]
SERVICES: tuple[Service, ...] = ("blob", "queue", "table")
DEFAULT_CONNECTION = "AzureWebJobsStorage"
ENDPOINT_SUFFIX = "core.windows.net"
MANAGED_IDENTITY = "managedidentity"
#: Services whose `<service>ServiceUri` the host honours over `accountName`.
SERVICE_URI_FIRST: frozenset[Service] = frozenset({"table"})


class MissingSetting(RuntimeError):
    """A required app setting is not set."""


class _ServiceClient(Protocol):
    def __init__(self, url: str, /, *, credential: TokenCredential, **kwargs: Any) -> None: ...

    @classmethod
    def from_connection_string(cls, conn_str: str, **kwargs: Any) -> Any: ...


ClientT = TypeVar("ClientT", bound=_ServiceClient)


@dataclass(frozen=True, kw_only=True)
class StorageConnection:
    """Where a storage account is and how to sign in to it; hashable, so clients can be cached."""

    #: The connection string; None for an identity-based connection.
    connection_string: str | None = None
    #: `(service, URI)` pairs of an identity-based connection.
    service_uris: tuple[tuple[Service, str], ...] = ()
    #: `managedidentity`, or None for DefaultAzureCredential.
    credential: str | None = None
    #: The client id of a user-assigned managed identity.
    client_id: str | None = None

    @property
    def keyless(self) -> bool:
        """Whether this connection signs in with Microsoft Entra ID rather than a string."""
        return self.connection_string is None

    def service_uri(self, service: Service) -> str:
        """The URI of `service`; MissingSetting if this connection does not name one."""
        for name, uri in self.service_uris:
            if name == service:
                return uri
        raise MissingSetting(f"the storage connection has no {service} service URI: set "
                             f"__accountName or __{service}ServiceUri")


def read_connection(env: Mapping[str, str], name: str = DEFAULT_CONNECTION) -> StorageConnection:
    """Read connection `name` from `env`; MissingSetting, naming both forms, if it has neither.

    Like the host, `AzureWebJobs<name>` is looked up first and then `<name>`.
    """
    for candidate in (f"AzureWebJobs{name}", name):
        found = _read(env, candidate)
        if found is not None:
            return found
    raise MissingSetting(
        f"storage connection {name!r} is not set: set {name} to a connection string, or "
        f"{name}__accountName (or {name}__blobServiceUri, __queueServiceUri and "
        f"__tableServiceUri) for an identity-based connection, with "
        f"{name}__credential=managedidentity and {name}__clientId for a managed identity")


def token_credential(connection: StorageConnection) -> TokenCredential:
    """The credential an identity-based connection signs in with, as the host chooses it
    (`ClientFactory.CreateCredential`, Azure/azure-sdk-for-net,
    sdk/extensions/Microsoft.Extensions.Azure/src/Internal/ClientFactory.cs)."""
    # Imported here: azure.identity is a third of the app's import time, and only an
    # identity-based connection needs it.
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    if (connection.credential or "").lower() == MANAGED_IDENTITY:
        return ManagedIdentityCredential(client_id=connection.client_id)
    if connection.client_id:
        return DefaultAzureCredential(managed_identity_client_id=connection.client_id)
    return DefaultAzureCredential()


def service_client(
    factory: type[ClientT], connection: StorageConnection, service: Service, **options: Any
) -> ClientT:
    """A `TableServiceClient`, `QueueServiceClient`, ... for `service` on `connection`."""
    if connection.connection_string is not None:
        client: ClientT = factory.from_connection_string(connection.connection_string, **options)
        return client
    uri = connection.service_uri(service)
    return factory(uri, credential=token_credential(connection), **options)


def _read(env: Mapping[str, str], name: str) -> StorageConnection | None:
    value = env.get(name, "").strip()
    if value:
        return StorageConnection(connection_string=value)
    section = _section(env, name)
    if not section:
        return None
    uris = tuple((s, uri) for s in SERVICES if (uri := _service_uri(section, s)) is not None)
    if not uris:
        return None
    return StorageConnection(service_uris=uris, credential=section.get("credential"),
                             client_id=section.get("clientid"))


def _section(env: Mapping[str, str], name: str) -> dict[str, str]:
    """The `<name>__<key>` settings, keys lowercased: app setting names ignore case."""
    prefix = f"{name}__".lower()
    return {key[len(prefix):].lower(): value.strip() for key, value in env.items()
            if key.lower().startswith(prefix) and value.strip()}


def _service_uri(section: Mapping[str, str], service: Service) -> str | None:
    account = section.get("accountname")
    from_account = f"https://{account}.{service}.{ENDPOINT_SUFFIX}" if account else None
    given = section.get(f"{service}serviceuri")
    from_uri = given.rstrip("/") if given else None
    if service in SERVICE_URI_FIRST:
        return from_uri or from_account
    return from_account or from_uri
