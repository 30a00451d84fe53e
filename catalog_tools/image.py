"""The function image's reference: the repository in krm_functions/IMAGE (fully qualified,
registry host included) and a tag tied to the tree, `<project version>-<source digest>`.

A tree whose functions differ never reuses another tree's tag, so two checkouts on one
machine (or a rebuilt checkout) cannot silently swap each other's image. Standard library
only: scripts/build-image, scripts/docker-shim-krm-fn and the Makefile call it before the
project's venv exists.

    python3 -m catalog_tools.image [reference | repository | tag | platform]
"""

from __future__ import annotations

import hashlib
import platform as _platform
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "krm_functions/Dockerfile")
SUFFIXES = {".py", ".yaml", ".j2"}


def repository() -> str:
    return (ROOT / "krm_functions" / "IMAGE").read_text().strip()


def version() -> str:
    text = (ROOT / "krm_functions" / "__init__.py").read_text()
    return re.search(r'^__version__ = "([^"]+)"', text, re.M).group(1)


def source_files() -> list[Path]:
    """What the image is built from: the package (not its golden examples), its build files."""
    package = ROOT / "krm_functions"
    files = [p for p in package.rglob("*") if p.is_file() and (p.suffix in SUFFIXES or p.name == "IMAGE")
             and "examples" not in p.relative_to(package).parts and "__pycache__" not in p.parts]
    return sorted(files + [ROOT / s for s in SOURCES])


def source_digest() -> str:
    digest = hashlib.sha256()
    for path in source_files():
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def tag() -> str:
    return f"{version()}-{source_digest()[:12]}"


def reference() -> str:
    return f"{repository()}:{tag()}"


def platform(machine: str = "") -> str:
    """The manylinux wheel architecture for a machine name: Docker on macOS says arm64, Linux aarch64."""
    machine = machine or _platform.machine()
    return {"arm64": "aarch64", "amd64": "x86_64"}.get(machine, machine)


def main(argv: list[str]) -> int:
    what = argv[0] if argv else "reference"
    answers = {"reference": reference, "repository": repository, "tag": tag,
               "platform": lambda: platform(argv[1] if len(argv) > 1 else "")}
    if what not in answers:
        print(f"usage: python3 -m catalog_tools.image [{' | '.join(answers)}]", file=sys.stderr)
        return 2
    print(answers[what]())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
