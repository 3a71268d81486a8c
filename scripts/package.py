"""Build the deployment zip without Core Tools: the app's files, minus what .funcignore names.

    python scripts/package.py [OUT]        (default build/app.zip)

The zip holds source only; with `--build-remote true` the platform installs requirements.txt.
.funcignore patterns are read as Core Tools reads them for a pattern without a slash: one
matches a file or folder of that name (globs allowed) at any depth.
"""

from __future__ import annotations

import fnmatch
import os
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "build" / "app.zip"
# A fixed timestamp, so the same files always make the same zip.
EPOCH = (1980, 1, 1, 0, 0, 0)


def ignore_patterns(root: Path) -> list[str]:
    """The .funcignore patterns: one a line, blank lines and # comments skipped."""
    path = root / ".funcignore"
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    return [p.strip().strip("/") for p in lines if p.strip() and not p.startswith("#")]


def app_files(root: Path, patterns: list[str]) -> Iterator[Path]:
    """Every file under `root` that no pattern excludes, in a stable order."""

    def kept(name: str) -> bool:
        return not any(fnmatch.fnmatch(name, pattern) for pattern in patterns)

    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if kept(d))  # an excluded folder is not walked
        yield from (Path(folder) / f for f in sorted(files) if kept(f))


def build(root: Path, out: Path) -> list[str]:
    """Write the zip to `out` and return the names it holds."""
    out.parent.mkdir(parents=True, exist_ok=True)
    names: list[str] = []
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in app_files(root, ignore_patterns(root)):
            if path.resolve() == out.resolve():
                continue
            name = path.relative_to(root).as_posix()
            info = zipfile.ZipInfo(name, date_time=EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes())
            names.append(name)
    return names


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else DEFAULT_OUT
    names = build(ROOT, out)
    if "host.json" not in names or "function_app.py" not in names:
        print(f"{out}: host.json and function_app.py must be at the root", file=sys.stderr)
        return 1
    tops = sorted({name.split("/", 1)[0] + ("/" if "/" in name else "") for name in names})
    print(f"{out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}: {len(names)} files, "
          f"{out.stat().st_size // 1024} KiB")
    print("  " + " ".join(tops))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
