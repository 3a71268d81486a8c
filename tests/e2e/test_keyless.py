"""The recipe with no account key anywhere: Azurite in OAuth mode, a managed identity, devhost.

Azurite's `--oauth basic` accepts a bearer token whose audience is the storage audience,
whose issuer is Entra ID's and which has not expired; it needs HTTPS, so the test makes a
throwaway certificate and trusts it with REQUESTS_CA_BUNDLE. The app's own credential code
(azure-identity's ManagedIdentityCredential and DefaultAzureCredential) takes tokens from
tests/support/identity.py, which speaks the App Service managed-identity protocol.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError
from azure.data.tables import TableServiceClient
from azure.identity import ManagedIdentityCredential

from tests.e2e.conftest import APP_ENV, HOST_JSON, ROOT, wait_until
from tests.support import devhost_process
from tests.support.azurite import ACCOUNT, ACCOUNT_KEY, Azurite
from tests.support.identity import STORAGE_AUDIENCE, IdentityEndpoint, make_certificate

pytestmark = pytest.mark.e2e
EXAMPLE = {"job_type": "thumbnail", "customer_id": "cust-123", "payload": {}}


@dataclass
class KeylessStorage:
    azurite: Azurite
    certificate: Path

    def uri(self, service: str) -> str:
        port = {"blob": self.azurite.blob_port, "queue": self.azurite.queue_port,
                "table": self.azurite.table_port}[service]
        return f"https://127.0.0.1:{port}/{ACCOUNT}"


@pytest.fixture(scope="module")
def keyless_storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeylessStorage]:
    cert, key = make_certificate(tmp_path_factory.mktemp("tls"))
    azurite = Azurite(extra_args=("--oauth", "basic", "--cert", str(cert), "--key", str(key)))
    azurite.start()
    yield KeylessStorage(azurite, cert)
    azurite.stop()


@pytest.fixture
def identity() -> Iterator[IdentityEndpoint]:
    endpoint = IdentityEndpoint()
    endpoint.start()
    yield endpoint
    endpoint.stop()


def _keyless_env(storage: KeylessStorage, identity: IdentityEndpoint,
                 credential: dict[str, str]) -> dict[str, str]:
    uris = {f"AzureWebJobsStorage__{s}ServiceUri": storage.uri(s)
            for s in ("blob", "queue", "table")}
    return {**APP_ENV, "JOB_HANDLER_MODULES": "tests.e2e.handlers", **uris, **credential,
            **identity.environment, "REQUESTS_CA_BUNDLE": str(storage.certificate)}


USER_ASSIGNED = str(uuid.uuid4())
CREDENTIALS = [
    pytest.param({"AzureWebJobsStorage__credential": "managedidentity",
                  "AzureWebJobsStorage__clientId": USER_ASSIGNED}, USER_ASSIGNED,
                 id="user-assigned-managed-identity"),
    pytest.param({}, None, id="default-azure-credential"),
]


#: What `make run` leaves behind, made worse: each value breaks the test if it is read. The
#: connection string names a port nothing listens on (so a developer's running Azurite cannot
#: answer for it), and the worker is disabled.
HOSTILE_LOCAL_SETTINGS = {
    "IsEncrypted": False,
    "Values": {
        "AzureWebJobsStorage": f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};"
        f"AccountKey={ACCOUNT_KEY};BlobEndpoint=http://127.0.0.1:9/{ACCOUNT};"
        f"QueueEndpoint=http://127.0.0.1:9/{ACCOUNT};TableEndpoint=http://127.0.0.1:9/{ACCOUNT};",
        "AzureWebJobs.process_job.Disabled": "true",
    },
}


@pytest.mark.parametrize(("credential", "client_id"), CREDENTIALS)
def test_keyless_recipe_flow_through_devhost(
    keyless_storage: KeylessStorage, identity: IdentityEndpoint,
    monkeypatch: pytest.MonkeyPatch, credential: dict[str, str], client_id: str | None,
) -> None:
    run_keyless_flow(ROOT, keyless_storage, identity, monkeypatch, credential)
    asked = {(r.get("resource"), r.get("client_id")) for r in identity.requests}
    assert asked == {(STORAGE_AUDIENCE, client_id)}


def test_keyless_flow_ignores_the_checkouts_local_settings(
    keyless_storage: KeylessStorage, identity: IdentityEndpoint,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    """A checkout with a local.settings.json (as `make run` writes one) still passes: the
    file's AzureWebJobsStorage would otherwise win over the identity settings and give 503."""
    checkout = devhost_process.app_tree(ROOT, tmp_path / "checkout")
    hostile = checkout / "local.settings.json"
    hostile.unlink(missing_ok=True)  # were it a link, writing would reach the developer's file
    hostile.write_text(json.dumps(HOSTILE_LOCAL_SETTINGS))
    run_keyless_flow(checkout, keyless_storage, identity, monkeypatch, {})


def run_keyless_flow(
    checkout: Path, storage: KeylessStorage, identity: IdentityEndpoint,
    monkeypatch: pytest.MonkeyPatch, credential: dict[str, str],
) -> None:
    """Complete one job and cancel a running one, through a host on `checkout`."""
    # The suite's own default connection string must not reach the host's environment.
    for name in [n for n in os.environ if n.lower().startswith("azurewebjobs")]:
        monkeypatch.delenv(name)
    env = _keyless_env(storage, identity, credential)
    with devhost_process.start(checkout, env=env, host_json_override=HOST_JSON,
                               checkout=checkout) as host:
        host.wait_ready()
        _assert_no_account_key(host.process.pid)
        jobs = f"{host.base_url}/api/jobs"

        done = _submit(jobs, EXAMPLE)
        record = _wait_for(jobs, done, {"completed"})
        assert record["result"]["artifactUrl"].endswith(f"/jobs/{done}.json")
        refused = requests.delete(f"{jobs}/{done}", timeout=10)
        assert refused.status_code == 409

        running = _submit(jobs, {**EXAMPLE, "job_type": "slow", "payload": {"seconds": 4}})
        _wait_for(jobs, running, {"running"})
        cancelled = requests.delete(f"{jobs}/{running}", timeout=10)
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        assert _wait_for(jobs, running, {"cancelled"})["status"] == "cancelled"


def test_keyless_token_with_another_audience_is_refused(
    keyless_storage: KeylessStorage, identity: IdentityEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in identity.environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(keyless_storage.certificate))
    service = TableServiceClient(keyless_storage.uri("table"),
                                 credential=ManagedIdentityCredential())
    assert isinstance(list(service.list_tables()), list)

    identity.audience = "https://vault.azure.net"
    refused = TableServiceClient(keyless_storage.uri("table"),
                                 credential=ManagedIdentityCredential())
    with pytest.raises(ClientAuthenticationError, match="audience"):
        list(refused.list_tables())


def _submit(jobs: str, body: dict[str, Any]) -> str:
    response = requests.post(jobs, json=body, timeout=30)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["job_id"]
    return job_id


def _wait_for(jobs: str, job_id: str, statuses: set[str]) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        record: dict[str, Any] = requests.get(f"{jobs}/{job_id}", timeout=10).json()
        return record if record.get("status") in statuses else None

    found: dict[str, Any] = wait_until(probe, timeout=30)
    return found


def _assert_no_account_key(pid: int) -> None:
    """The host's environment, as the kernel holds it, carries no key or connection string."""
    environ = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").split("\0")
    settings = dict(item.split("=", 1) for item in environ if "=" in item)
    assert "AzureWebJobsStorage" not in settings
    assert not any(ACCOUNT_KEY in value or "AccountKey=" in value or "SharedAccessSignature"
                   in value for value in settings.values())
    assert settings["AzureWebJobsStorage__tableServiceUri"].startswith("https://")
