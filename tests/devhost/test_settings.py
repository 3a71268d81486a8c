"""host.json and local.settings.json handling, %SETTING% expressions and connection strings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from devhost.errors import SettingsError
from devhost.settings import (
    DEFAULT_LEASE_SECONDS,
    QueueOptions,
    apply_local_values,
    connection_string,
    deep_merge,
    load_host_json,
    local_http_port,
    message_lease_seconds,
    parse_timespan,
    queue_options,
    request_body_limit,
    resolve_expression,
    route_prefix,
    worker_process_count,
    worker_thread_count,
)

AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def test_deep_merge_merges_nested_objects_and_replaces_other_values() -> None:
    base: dict[str, Any] = {
        "version": "2.0", "extensions": {"queues": {"batchSize": 8, "maxDequeueCount": 5}}}
    override = {"extensions": {"queues": {"maxDequeueCount": 2}, "http": {"routePrefix": ""}}}
    assert deep_merge(base, override) == {
        "version": "2.0",
        "extensions": {"queues": {"batchSize": 8, "maxDequeueCount": 2},
                       "http": {"routePrefix": ""}},
    }
    assert base["extensions"]["queues"]["maxDequeueCount"] == 5  # inputs untouched


def test_load_host_json_applies_the_override_file(tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text(json.dumps({"extensions": {"queues": {"batchSize": 8}}}))
    override = tmp_path / "override.json"
    override.write_text(json.dumps({"extensions": {"queues": {"visibilityTimeout": "00:00:02"}}}))
    loaded = load_host_json(tmp_path, override)
    assert loaded["extensions"]["queues"] == {"batchSize": 8, "visibilityTimeout": "00:00:02"}


def test_load_host_json_missing_override_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError):
        load_host_json(tmp_path, tmp_path / "nope.json")


def test_local_values_fill_the_environment_but_existing_variables_win() -> None:
    environ = {"ALREADY": "from-environment"}
    local = {"Values": {"ALREADY": "from-file", "NEW": "from-file", "FLAG": True, "COUNT": 5}}
    apply_local_values(local, environ)
    assert environ == {"ALREADY": "from-environment", "NEW": "from-file", "FLAG": "true",
                       "COUNT": "5"}


def test_local_http_port_comes_from_the_host_section() -> None:
    assert local_http_port({"Host": {"LocalHttpPort": 7072}}) == 7072
    assert local_http_port({"Values": {}}) is None


def test_resolve_expression_replaces_settings_anywhere_in_the_value() -> None:
    environ = {"JOBS_QUEUE": "jobs-abc", "ENV": "dev"}
    assert resolve_expression("%JOBS_QUEUE%", environ) == "jobs-abc"
    assert resolve_expression("%ENV%-%JOBS_QUEUE%", environ) == "dev-jobs-abc"
    assert resolve_expression("plain-name", environ) == "plain-name"


def test_resolve_expression_unknown_setting_is_an_error_naming_it() -> None:
    with pytest.raises(SettingsError, match="MISSING_QUEUE"):
        resolve_expression("%MISSING_QUEUE%", {})


def test_development_storage_maps_to_azurite_default_ports() -> None:
    value = connection_string("AzureWebJobsStorage",
                              {"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    parts = dict(part.split("=", 1) for part in value.split(";") if part)
    assert parts["AccountName"] == "devstoreaccount1"
    assert parts["AccountKey"] == AZURITE_KEY
    assert parts["BlobEndpoint"] == "http://127.0.0.1:10000/devstoreaccount1"
    assert parts["QueueEndpoint"] == "http://127.0.0.1:10001/devstoreaccount1"
    assert parts["TableEndpoint"] == "http://127.0.0.1:10002/devstoreaccount1"


def test_explicit_connection_string_is_used_as_is_and_prefix_may_be_omitted() -> None:
    explicit = "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=b;QueueEndpoint=http://h/a;"
    assert connection_string(None, {"AzureWebJobsStorage": explicit}) == explicit
    assert connection_string("Storage", {"AzureWebJobsStorage": explicit}) == explicit


def test_missing_connection_setting_is_an_error() -> None:
    with pytest.raises(SettingsError, match="OtherStorage"):
        connection_string("OtherStorage", {})


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("00:00:05", 5.0), ("00:01:00", 60.0), ("1.00:00:00", 86400.0), ("00:00:00.250", 0.25)],
)
def test_parse_timespan_reads_dotnet_timespans(value: str, seconds: float) -> None:
    assert parse_timespan(value, field="f") == pytest.approx(seconds)


@pytest.mark.parametrize("value", [200, 2.5, "200", "3"])
def test_time_span_given_as_a_bare_number_is_rejected_with_a_clear_error(value: object) -> None:
    # host.json binds through .NET configuration (TimeSpan), where "200" is 200 days, not
    # milliseconds: the local host refuses to guess.
    with pytest.raises(SettingsError, match="bare number") as raised:
        parse_timespan(value, field="maxPollingInterval")
    assert "00:00:00.200" in str(raised.value) and "days" in str(raised.value)


@pytest.mark.parametrize("value", ["5 seconds", "", True, "00:00:99:1"])
def test_parse_timespan_rejects_other_values(value: object) -> None:
    with pytest.raises(SettingsError):
        parse_timespan(value, field="f")


def test_queue_options_default_to_the_hosts_values() -> None:
    # QueuesOptions: batchSize 16, NewBatchThreshold (BatchSize / 2) * ProcessorCount,
    # visibilityTimeout zero, maxDequeueCount 5. maxPollingInterval: 2 s in a Development
    # environment such as func start (StorageQueuesWebJobsBuilderExtensions.
    # AddAzureStorageQueues), else QueuePollingIntervals.DefaultMaximum, 1 minute.
    assert queue_options({}, processors=2) == QueueOptions(
        batch_size=16, new_batch_threshold=16, visibility_timeout=0.0, max_dequeue_count=5,
        max_polling_interval=2.0, message_encoding="base64")


def test_new_batch_threshold_default_scales_with_processors() -> None:
    # QueuesOptions.NewBatchThreshold: "(BatchSize / 2) * processorCount" when not set.
    queues = {"extensions": {"queues": {"batchSize": 8}}}
    assert queue_options(queues, processors=1).new_batch_threshold == 4
    assert queue_options(queues, processors=4).new_batch_threshold == 16
    explicit = {"extensions": {"queues": {"batchSize": 8, "newBatchThreshold": 1}}}
    assert queue_options(explicit, processors=4).new_batch_threshold == 1


def test_app_setting_overrides_host_json(tmp_path: Path) -> None:
    # The host adds the AzureFunctionsJobHost__ app settings as a configuration source over
    # host.json; `__` separates the path and keys compare case-insensitively.
    (tmp_path / "host.json").write_text(json.dumps(
        {"extensions": {"queues": {"maxDequeueCount": 5, "batchSize": 8}}}))
    env = {"AzureFunctionsJobHost__extensions__queues__maxDequeueCount": "3",
           "AzureFunctionsJobHost__Extensions__Queues__VisibilityTimeout": "00:00:04",
           "azurefunctionsjobhost__extensions__http__routePrefix": "v1"}
    loaded = load_host_json(tmp_path, environ=env)
    options = queue_options(loaded)
    assert (options.max_dequeue_count, options.batch_size) == (3, 8)
    assert options.visibility_timeout == 4.0
    assert route_prefix(loaded) == "v1"


def test_worker_thread_count_defaults_like_the_python_worker(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Dispatcher._get_sync_tp_max_workers: no setting means ThreadPoolExecutor's own default,
    # min(32, cpu_count + 4); the setting must be a whole number of at least 1.
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert worker_thread_count({}) == 6
    monkeypatch.setattr("os.cpu_count", lambda: 64)
    assert worker_thread_count({}) == 32
    assert worker_thread_count({"PYTHON_THREADPOOL_THREAD_COUNT": "3"}) == 3
    with pytest.raises(SettingsError):
        worker_thread_count({"PYTHON_THREADPOOL_THREAD_COUNT": "0"})


def test_worker_process_count_reads_the_setting() -> None:
    assert worker_process_count({}) == 1
    assert worker_process_count({"FUNCTIONS_WORKER_PROCESS_COUNT": "4"}) == 4
    with pytest.raises(SettingsError):
        worker_process_count({"FUNCTIONS_WORKER_PROCESS_COUNT": "11"})


def test_queue_options_read_host_json() -> None:
    options = queue_options({"extensions": {"queues": {
        "batchSize": 4, "visibilityTimeout": "00:00:02", "maxDequeueCount": 2,
        "maxPollingInterval": "00:00:00.200", "messageEncoding": "None"}}}, processors=1)
    assert options == QueueOptions(batch_size=4, new_batch_threshold=2, visibility_timeout=2.0,
                                   max_dequeue_count=2, max_polling_interval=0.2,
                                   message_encoding="none")


@pytest.mark.parametrize("queues", [{"batchSize": 33}, {"batchSize": 0},
                                    {"messageEncoding": "utf8"}, {"maxDequeueCount": "three"}])
def test_queue_options_reject_invalid_values(queues: dict[str, object]) -> None:
    with pytest.raises(SettingsError):
        queue_options({"extensions": {"queues": queues}})


def test_route_prefix_defaults_to_api_and_may_be_empty() -> None:
    assert route_prefix({}) == "api"
    assert route_prefix({"extensions": {"http": {"routePrefix": ""}}}) == ""
    assert route_prefix({"extensions": {"http": {"routePrefix": "/v1/"}}}) == "v1"


def test_message_lease_seconds_comes_from_the_environment() -> None:
    assert message_lease_seconds({}) == DEFAULT_LEASE_SECONDS == 600
    assert message_lease_seconds({"DEVHOST_MESSAGE_LEASE_SECONDS": "3"}) == 3.0
    with pytest.raises(SettingsError):
        message_lease_seconds({"DEVHOST_MESSAGE_LEASE_SECONDS": "soon"})


def test_request_body_limit_is_the_hosts_100_mb_unless_set() -> None:
    # FUNCTIONS_REQUEST_BODY_SIZE_LIMIT (Azure Functions app settings reference), in bytes.
    assert request_body_limit({}) == 104_857_600
    assert request_body_limit({"FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": "4096"}) == 4096
    for bad in ("0", "-1", "1e6", "lots"):
        with pytest.raises(SettingsError):
            request_body_limit({"FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": bad})
