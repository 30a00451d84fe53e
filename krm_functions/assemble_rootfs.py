"""Copy what the function image runs into a root filesystem of its own (the image's
last stage is `FROM scratch` plus this): the Python interpreter, the shared libraries
it and its extension modules link, the standard library, the functions and their
dependencies. No shell, package manager or setuid binary comes along.

Run by the image build (krm_functions/Dockerfile) with the base image's Python:
    python3 assemble_rootfs.py SITE_DIR ROOTFS
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

# Parts of the standard library no function imports: tests, GUIs, installers, docs.
SKIP = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "pydoc_data", "venv", "distutils",
        "site-packages", "dist-packages", "config-3.11-x86_64-linux-gnu"}
APP = Path("/opt/krm-functions")


def copy(path: str, root: Path) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if os.path.islink(path):
        copy(os.path.join(os.path.dirname(path), os.readlink(path)), root)
        if not target.exists() and not target.is_symlink():
            target.symlink_to(os.readlink(path))
    elif os.path.isfile(path) and not target.exists():
        shutil.copy2(path, target)
        target.chmod(target.stat().st_mode & 0o755)  # never a setuid or setgid bit


def linked_libraries(binaries: list[str]) -> set[str]:
    found = set()
    for binary in binaries:
        out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
        found |= set(re.findall(r"(/\S+) \(0x", out))
    return found


def main(site: str, rootfs: str) -> None:
    root = Path(rootfs)
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = [os.path.realpath(sys.executable)]
    for base in (stdlib, Path(site)):
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if not (base == stdlib and d in SKIP and Path(dirpath) == stdlib)]
            files += [os.path.join(dirpath, f) for f in filenames]
    for path in files:
        if path.startswith(site):
            rel = os.path.relpath(path, site)
            target = root / APP.relative_to("/") / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
            target.chmod(target.stat().st_mode & 0o755)
        else:
            copy(path, root)
    for lib in linked_libraries([f for f in files if f.endswith(".so") or ".so." in f] + [files[0]]):
        copy(lib, root)
    for conf in (f"/etc/python{sys.version_info[0]}.{sys.version_info[1]}",):
        for dirpath, _, filenames in os.walk(conf):
            for f in filenames:
                copy(os.path.join(dirpath, f), root)
    # kustomize runs the container as `nobody`; Docker resolves that name in /etc/passwd.
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc/passwd").write_text("nobody:x:65534:65534:nobody:/nonexistent:/nonexistent\n")
    (root / "etc/group").write_text("nogroup:x:65534:\n")
    python = root / "usr/local/bin/python3"
    if not python.exists():
        python.parent.mkdir(parents=True, exist_ok=True)
        python.symlink_to(os.path.realpath(sys.executable))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
