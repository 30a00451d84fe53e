"""Cached, CPU-only environments holding the exact server releases the images pin.

For each Python server of the servers table (a `pypi` package), the release is the
image tag (vllm/vllm-openai:v0.31.0 -> vllm==0.31.0), so bumping the image bumps
the check. The package goes in with --no-deps, beside torch's CPU build and the
packages its argument parser imports, locked in locks/<package>-<version>.txt and
installed with --no-deps too: pip resolves nothing, so the environment is the same
on every machine.
An environment is built once into build/conformance/<package>-<version>/ and
reused while its recipe is unchanged.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from krm_functions import tables
from krm_functions.krmfn import yamlio

from ..render import ROOT

HERE = Path(__file__).resolve().parent
RELEASES = HERE / "releases.yaml"
CACHE = Path(os.environ.get("SERVING_CATALOG_CONFORMANCE_CACHE", ROOT / "build" / "conformance"))


class EnvError(Exception):
    pass


@functools.lru_cache(maxsize=None)
def releases() -> dict:
    data = yamlio.load(RELEASES.read_text())
    # A server that is another's build of the same release (servers table `variantOf`, e.g.
    # vLLM's ROCm image) shares its package, parser, probe timings and what it loads.
    for name, row in tables.table("servers").items():
        base = row.get("variantOf")
        for section in ("python", "probes", "loads"):
            rows = data.get(section) or {}
            if base in rows and name not in rows:
                rows[name] = rows[base]
    return data


def image_version(image: str) -> str:
    """The release an image tag names: v0.31.0 -> 0.31.0."""
    tag = image.rsplit(":", 1)[-1]
    return tag[1:] if tag[:1] == "v" else tag


@dataclass(frozen=True)
class ServerEnv:
    server: str          # servers table row
    package: str         # PyPI package
    version: str
    lock: Path           # pinned packages the parser imports
    parser: str          # script in parsers/, run with the environment's python
    module: str          # the package's top-level module (its source is read for routes and metrics)
    program: tuple       # what the container runs: a console script and its subcommand, or python3 -m MODULE

    @property
    def path(self) -> Path:
        return CACHE / f"{self.package}-{self.version}"

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def recipe(self) -> str:
        if not self.lock.is_file():
            raise EnvError(f"no {self.lock.relative_to(ROOT)} for the servers table's {self.server} image "
                           f"({self.package} {self.version}): lock the packages its argument parser imports "
                           f"(README, Conformance)")
        return json.dumps({"package": self.package, "version": self.version, "lock": self.lock.read_text(),
                           "torch": releases()["torch"]}, sort_keys=True)

    def ready(self) -> bool:
        stamp = self.path / ".recipe"
        return stamp.is_file() and stamp.read_text() == self.recipe

    def build(self, log=sys.stderr) -> None:
        """Create the environment (a few minutes the first time; nothing when ready)."""
        if self.ready():
            return
        print(f"conformance: installing {self.package}=={self.version} into {self.path} (CPU only)", file=log,
              flush=True)
        subprocess.run(["rm", "-rf", str(self.path)], check=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(self.path)], check=True)
        pip = [str(self.python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        # torch's CPU build first; the server without its (CUDA) dependencies; then its parser's imports.
        for step in ([f"torch=={releases()['torch']}"], ["--no-deps", self._distribution()],
                     ["--no-deps", "-r", str(self.lock)]):
            proc = subprocess.run([*pip, *step], capture_output=True, text=True)
            if proc.returncode != 0:
                raise EnvError(f"pip install {' '.join(step)} failed:\n{proc.stderr.strip()[-2000:]}")
        (self.path / ".recipe").write_text(self.recipe)

    def _distribution(self) -> str:
        """What pip installs for the server: the release by name, or, for a release published
        only for a newer Python (`wheelPython`), its wheel re-tagged for this interpreter.
        Its Python source is unchanged; the parser imports none of its compiled modules."""
        python = releases()["python"][self.server].get("wheelPython")
        if not python:
            return f"{self.package}=={self.version}"
        wheels = self.path / "wheels"
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                               "--python-version", python, "--platform", "manylinux_2_24_x86_64", "-d", str(wheels),
                               f"{self.package}=={self.version}"], capture_output=True, text=True)
        if proc.returncode != 0:
            raise EnvError(f"pip download {self.package}=={self.version} failed: {proc.stderr.strip()[-1000:]}")
        [wheel] = wheels.glob("*.whl")
        # Its WHEEL file says linux_x86_64 where its name says manylinux: `wheel tags` wants them equal.
        wheel = wheel.rename(wheel.with_name(re.sub(r"manylinux_[0-9]+_[0-9]+_", "linux_", wheel.name)))
        tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
        proc = subprocess.run([sys.executable, "-m", "wheel", "tags", "--remove", "--python-tag", tag, "--abi-tag",
                               tag, str(wheel)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise EnvError(f"re-tagging {wheel.name} failed: {proc.stderr.strip()[-1000:]}")
        return str(next(wheels.glob(f"*-{tag}-{tag}-*.whl")))

    def run(self, payload: object, script: str = "", args: tuple = ()) -> object:
        """Run a script of parsers/ (default: the parser) on a JSON payload; its JSON answer."""
        self.build()
        script = script or self.parser
        proc = subprocess.run([str(self.python), str(HERE / "parsers" / script), *args], input=json.dumps(payload),
                              capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        if proc.returncode != 0:
            raise EnvError(f"{script} in {self.path} failed:\n{proc.stderr.strip()[-3000:]}")
        return json.loads(proc.stdout)

    def site_packages(self) -> Path:
        self.build()
        return next(self.path.glob("lib/python*/site-packages"))

    def requires(self, name: str) -> bool:
        """The release depends on `name` unconditionally (Requires-Dist without a marker)."""
        dist = next(self.site_packages().glob(f"{self.package.replace('-', '_')}-{self.version}.dist-info"), None)
        metadata = (dist / "METADATA").read_text() if dist else ""
        return re.search(rf"^Requires-Dist: {re.escape(name)}(\[[^\]]*\])?\s*(\(|[<>=!~]|$)[^;]*$", metadata,
                         re.M) is not None

    def has_program(self) -> bool:
        """The console script (entry_points.txt of the installed release) or the module exists."""
        site = self.site_packages()
        if self.program[:2] == ("python3", "-m"):
            module = Path(*self.program[2].split("."))
            return (site / f"{module}.py").is_file() or (site / module / "__main__.py").is_file()
        dist = next(site.glob(f"{self.package.replace('-', '_')}-{self.version}.dist-info"), None)
        scripts = (dist / "entry_points.txt").read_text() if dist else ""
        return re.search(rf"^{re.escape(self.program[0])}\s*=", scripts, re.M) is not None


@dataclass(frozen=True)
class ReleaseSource:
    """The published Python source of a release whose program is not a server CLI we parse
    (JetStream's orchestrator, which defines the metrics maxengine exports; the benchmark
    tool, whose config reader checks our configs): its PyPI wheel, unpacked into
    build/conformance/sources/<package>-<version>/."""
    package: str
    version: str
    python: Optional[str] = None  # the Python its wheel is published for, when newer than ours

    @property
    def path(self) -> Path:
        return CACHE / "sources" / f"{self.package}-{self.version}"

    def fetch(self, log=sys.stderr) -> Path:
        if (self.path / ".complete").exists():
            return self.path
        print(f"conformance: fetching {self.package}=={self.version} (source only)", file=log, flush=True)
        wheels = self.path.with_name(self.path.name + ".download")
        python = ["--python-version", self.python] if self.python else []
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                               *python, "-d", str(wheels), f"{self.package}=={self.version}"],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise EnvError(f"pip download {self.package}=={self.version} failed: {proc.stderr.strip()[-1000:]}")
        [wheel] = wheels.glob("*.whl")
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(self.path)
        (self.path / ".complete").write_text(wheel.name + "\n")
        return self.path


def release_sources() -> dict[str, ReleaseSource]:
    """server row -> the published source of its pinned release (releases.yaml `cli.<server>.<version>.source`)."""
    found = {}
    for name, row in tables.table("servers").items():
        version = image_version(row["image"])
        package = (((releases().get("cli") or {}).get(name) or {}).get(version) or {}).get("package")
        if package:
            found[name] = ReleaseSource(package, version)
    return found


def server_envs() -> dict[str, ServerEnv]:
    """server row -> its environment, for every server with a Python CLI."""
    table = releases()["python"]
    found = {}
    for name, row in tables.table("servers").items():
        if name not in table:
            continue
        spec = table[name]
        version = image_version(row["image"])
        lock = HERE / "locks" / f"{spec['package']}-{version}.txt"
        found[name] = ServerEnv(name, spec["package"], version, lock, spec["parser"], spec["module"],
                                tuple(spec["program"]))
    return found
