"""Reading the storage connection by the Functions host's rules, and the settings around it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

from jobs.settings import Settings
from storage_connection import MissingSetting, StorageConnection, read_connection, token_credential

ROOT = Path(__file__).resolve().parents[2]
CONN = "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=a2V5;EndpointSuffix=example.net"


def test_connection_string_is_used_as_is_and_wins_over_identity_settings() -> None:
    env = {"AzureWebJobsStorage": CONN, "AzureWebJobsStorage__accountName": "other"}
    connection = read_connection(env)
    assert connection == StorageConnection(connection_string=CONN)
    assert not connection.keyless


def test_connection_account_name_expands_to_the_three_service_uris() -> None:
    connection = read_connection({"AzureWebJobsStorage__accountName": "acct",
                                  "AzureWebJobsStorage__credential": "managedidentity",
                                  "AzureWebJobsStorage__clientId": "cid"})
    assert connection.keyless
    assert [connection.service_uri(s) for s in ("blob", "queue", "table")] == [
        "https://acct.blob.core.windows.net", "https://acct.queue.core.windows.net",
        "https://acct.table.core.windows.net"]
    assert (connection.credential, connection.client_id) == ("managedidentity", "cid")


def test_connection_service_uris_are_read_per_service_and_names_ignore_case() -> None:
    connection = read_connection({
        "AzureWebJobsStorage__queueServiceUri": "https://q.example/",
        "AZUREWEBJOBSSTORAGE__TABLESERVICEURI": "https://t.example",
    })
    assert connection.service_uri("queue") == "https://q.example"
    assert connection.service_uri("table") == "https://t.example"
    with pytest.raises(MissingSetting, match="blobServiceUri"):
        connection.service_uri("blob")


def test_connection_prefers_account_name_for_queue_and_table_service_uri_for_table() -> None:
    # Queue: StorageClientProvider.TryGetServiceUri reads accountName first (azure-sdk-for-net,
    # Microsoft.Azure.WebJobs.Extensions.Storage.Common). Table: the host's
    # StorageServiceUriOptions.GetTableServiceUri honours TableServiceUri first
    # (azure-functions-host, src/WebJobs.Script/StorageProvider/StorageServiceUriOptions.cs).
    connection = read_connection({"AzureWebJobsStorage__accountName": "acct",
                                  "AzureWebJobsStorage__queueServiceUri": "https://q.example",
                                  "AzureWebJobsStorage__tableServiceUri": "https://t.example"})
    assert connection.service_uri("table") == "https://t.example"
    assert connection.service_uri("queue") == "https://acct.queue.core.windows.net"


def test_connection_prefixed_name_is_looked_up_first() -> None:
    env = {"AzureWebJobsJobs": "UseDevelopmentStorage=true", "Jobs": CONN}
    assert read_connection(env, "Jobs").connection_string == "UseDevelopmentStorage=true"
    assert read_connection({"Jobs__accountName": "acct"}, "Jobs").keyless


@pytest.mark.parametrize("env", [{}, {"AzureWebJobsStorage": " "},
                                 {"AzureWebJobsStorage__credential": "managedidentity"}])
def test_connection_missing_names_both_forms(env: dict[str, str]) -> None:
    with pytest.raises(MissingSetting) as raised:
        read_connection(env)
    message = str(raised.value)
    assert "connection string" in message and "AzureWebJobsStorage__accountName" in message
    assert "__queueServiceUri" in message and "managedidentity" in message


def test_connection_credential_is_managed_identity_only_when_asked() -> None:
    user_assigned = StorageConnection(service_uris=(("table", "https://t"),),
                                      credential="ManagedIdentity", client_id="cid")
    assert isinstance(token_credential(user_assigned), ManagedIdentityCredential)
    default = StorageConnection(service_uris=(("table", "https://t"),))
    assert isinstance(token_credential(default), DefaultAzureCredential)


def test_settings_start_up_fails_with_one_message_naming_both_forms() -> None:
    env = {k: v for k, v in os.environ.items() if not k.lower().startswith("azurewebjobs")}
    done = subprocess.run([sys.executable, "-c", "import function_app"], env=env, cwd=ROOT,
                          capture_output=True, text=True, check=False)
    assert done.returncode != 0
    assert "MissingSetting" in done.stderr and "__accountName" in done.stderr


def test_settings_default_to_function_keys_and_read_the_public_base_url() -> None:
    env = {"AzureWebJobsStorage__accountName": "acct"}
    assert Settings.from_env(env).auth_level == "FUNCTION"
    assert Settings.from_env(env).public_base_url is None
    given = Settings.from_env({**env, "JOBS_PUBLIC_BASE_URL": "https://api.example.com/jobs-api/"})
    assert given.public_base_url == "https://api.example.com/jobs-api"


@pytest.mark.parametrize("value", ["api.example.com", "ftp://x", "https://x/?a=1", "https://"])
def test_settings_refuse_a_public_base_url_that_is_not_an_absolute_http_url(value: str) -> None:
    with pytest.raises(ValueError, match="JOBS_PUBLIC_BASE_URL"):
        Settings.from_env({"AzureWebJobsStorage": CONN, "JOBS_PUBLIC_BASE_URL": value})


def test_devhost_reads_identity_connections_as_the_app_does() -> None:
    from devhost.settings import storage_connection

    env = {"AzureWebJobsStorage__accountName": "acct",
           "AzureWebJobsStorage__tableServiceUri": "https://t.example",
           "AzureWebJobsStorage__credential": "managedidentity"}
    app, host = read_connection(env), storage_connection(None, env)
    assert [app.service_uri(s) for s in ("blob", "queue", "table")] == [
        host.service_uri(s) for s in ("blob", "queue", "table")]
    assert (app.credential, app.client_id) == (host.credential, host.client_id)
