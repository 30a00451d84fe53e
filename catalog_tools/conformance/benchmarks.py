"""The benchmark tool against its pinned release: every rendered benchmark config goes
through the release's own config reader, and the program, its flag and the route its
client calls are read in the release's source (and the route in each benchmarked
server's release)."""

from __future__ import annotations

import functools
import re
from typing import Iterable

from krm_functions import tables
from krm_functions.krmfn import KubeObject

from . import envs
from .check import Release

CHECKER = "inference_perf_config.py"


@functools.lru_cache(maxsize=None)
def release(tool: str) -> envs.ReleaseSource:
    row = tables.benchmark(tool)
    return envs.ReleaseSource(row["package"], envs.image_version(row["image"]), row.get("wheelPython"))


def source_problems(tool: str) -> list[str]:
    """The program, its config flag and the client's route are in the pinned release;
    every benchmarked server's release serves that route and /v1/models (the wait)."""
    row, rel = tables.benchmark(tool), release(tool)
    root = rel.fetch()
    label = f"{row['package']} {rel.version}"
    problems = []
    program, flag = row["program"]
    scripts = next(root.glob("*.dist-info/entry_points.txt")).read_text()
    if not re.search(rf"^{re.escape(program)}\s*=", scripts, re.M):
        problems.append(f"{label}: no console script {program} (entry_points.txt)")
    source = "\n".join(p.read_text(errors="replace") for p in (root / "inference_perf").rglob("*.py"))
    if f'"{flag}"' not in source:
        problems.append(f"{label}: no flag {flag} in its source")
    if f'"{row["api"]["path"]}"' not in source:
        problems.append(f"{label}: its clients never call {row['api']['path']}")
    from krm_functions.benchmark.function import READY_ROUTE
    for server in row["clients"]:
        routes = Release(server).routes(server)
        for route in (row["api"]["path"], READY_ROUTE):
            if route not in routes:
                problems.append(f"{server} {Release(server).version}: no route {route}, which {tool} calls")
    return problems


def config_problems(tool: str, rendered: Iterable[tuple[str, list[dict]]]) -> list[str]:
    """Each benchmark ConfigMap's config through the release's read_config; the Job runs
    the table's image."""
    row = tables.benchmark(tool)
    files, problems = [], []
    for entry, docs in rendered:
        for obj in (KubeObject(d) for d in docs):
            if obj.kind == "ConfigMap" and "config.yml" in (obj.get("data") or {}):
                files.append([f"{entry}: ConfigMap/{obj.name}", obj.get("data")["config.yml"]])
            for tmpl in obj.pod_templates():
                for c in (tmpl.spec.get("initContainers") or []) + (tmpl.spec.get("containers") or []):
                    if c.get("image") != row["image"]:
                        problems.append(f"{entry}: {obj.kind}/{obj.name} container {c.get('name')} runs "
                                        f"{c.get('image')}, not the benchmarks table's {row['image']}")
    python = envs.server_envs()["vllm"]  # pydantic and PyYAML, pinned by its lock
    answers = python.run(files, CHECKER, (str(release(tool).fetch()),)) if files else []
    problems += [f"{name}: {tool} {release(tool).version} rejects it: {problem}" for name, problem in answers if problem]
    return problems
