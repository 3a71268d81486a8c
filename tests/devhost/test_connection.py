"""The local host's storage connections, read by the reader it shares with the app
(storage_connection.py, tested in tests/unit/test_connection.py), and its independence from
the app."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from devhost.errors import SettingsError
from devhost.settings import DEVELOPMENT_STORAGE, storage_connection
from storage_connection import StorageConnection

ROOT = Path(__file__).resolve().parents[2]
DEVHOST = ROOT / "devhost"
CONN = "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=a2V5;EndpointSuffix=example.net"


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", [*sorted(DEVHOST.glob("*.py")), ROOT / "storage_connection.py"],
                         ids=lambda p: p.name)
def test_devhost_module_imports_nothing_from_the_app(path: Path) -> None:
    app_modules = {"jobs", "function_app", "api_docs"}
    found = {name for name in _imported_modules(path) if name.split(".")[0] in app_modules}
    assert found == set(), f"{path.name} imports {sorted(found)}"


def test_devhost_imports_with_the_app_package_unavailable(tmp_path: Path) -> None:
    # A `jobs` package that fails on import shadows the real one: no devhost module may load it.
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "__init__.py").write_text("raise ImportError('jobs is not available')\n")
    modules = sorted(f"devhost.{p.stem}" for p in DEVHOST.glob("*.py") if p.stem != "__main__")
    code = ("import sys; sys.path.insert(0, sys.argv[1]); sys.path.insert(1, sys.argv[2])\n"
            "import importlib\n"
            "for name in sys.argv[3:]: importlib.import_module(name)\n"
            "assert 'jobs' not in sys.modules or sys.modules['jobs'] is None\n")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path), str(ROOT), *modules],
                          capture_output=True, text=True, check=False, cwd=tmp_path)
    assert done.returncode == 0, done.stderr


def test_connection_string_wins_over_identity_settings() -> None:
    env = {"AzureWebJobsStorage": CONN, "AzureWebJobsStorage__accountName": "other"}
    assert storage_connection(None, env) == StorageConnection(connection_string=CONN)


def test_development_storage_expands_to_azurite() -> None:
    connection = storage_connection(None, {"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    assert connection.connection_string == DEVELOPMENT_STORAGE


def test_identity_connection_without_a_queue_uri_stops_start_up() -> None:
    with pytest.raises(SettingsError, match="queueServiceUri"):
        storage_connection(None, {"AzureWebJobsStorage__tableServiceUri": "https://t.example"})


def test_prefixed_name_is_looked_up_first_and_a_missing_one_names_both_forms() -> None:
    env = {"AzureWebJobsJobs": CONN, "Jobs": "other"}
    assert storage_connection("Jobs", env).connection_string == CONN
    with pytest.raises(SettingsError) as raised:
        storage_connection("OtherStorage", {"OtherStorage__credential": "managedidentity"})
    assert "connection string" in str(raised.value)
    assert "OtherStorage__accountName" in str(raised.value)
