"""The deployment zip scripts/package.py builds: the app's files, nothing .funcignore names."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _package() -> ModuleType:
    spec = importlib.util.spec_from_file_location("package", ROOT / "scripts" / "package.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_package_holds_the_app_and_leaves_out_what_funcignore_names(tmp_path: Path) -> None:
    out = tmp_path / "app.zip"
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "package.py"), str(out)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    names = set(zipfile.ZipFile(out).namelist())
    assert {"host.json", "function_app.py", "requirements.txt", "api_docs.py",
            "storage_connection.py", "jobs/__init__.py", "jobs/worker.py"} <= names
    tops = {name.split("/")[0] for name in names}
    assert tops.isdisjoint({"tests", "devhost", "docs", "bench", "scripts", ".venv",
                            "node_modules", "local.settings.json", ".git", "build"})
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)


def test_package_patterns_match_a_name_at_any_depth(tmp_path: Path) -> None:
    package = _package()
    (tmp_path / ".funcignore").write_text("# comment\n\ntests\n*.pyc\nlocal.settings.json\n")
    for name in ["host.json", "function_app.py", "jobs/a.py", "jobs/a.pyc", "tests/t.py",
                 "jobs/tests/t.py", "local.settings.json"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    names = package.build(tmp_path, tmp_path / "out" / "app.zip")
    assert sorted(names) == [".funcignore", "function_app.py", "host.json", "jobs/a.py"]
