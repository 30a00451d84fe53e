"""The catalog's entries, read from the tree, and catalog.md made from them.

An entry is serving-catalog/<platform>/<crd>/<server>/<model>/<provider>/ with a
kustomization.yaml; its accelerator is read from the accelerator Component it uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from krm_functions import memory, tables
from krm_functions.accelerator import function as accelerator
from krm_functions.krmfn import KubeObject, yamlio
from krm_functions.workloads import KSERVE_LLM_CONTAINER

from . import benchmark
from .render import ROOT, render

KINDS = {"deployment": "Deployment", "lws": "LeaderWorkerSet", "inferenceservice": "InferenceService",
         "llminferenceservice": "LLMInferenceService", "modelservice": "ModelService"}


@dataclass(frozen=True)
class Entry:
    path: Path  # relative to ROOT
    platform: str
    crd: str
    server: str
    model: str
    provider: str
    accelerator: Optional[dict]
    group: int = 1  # pods per replica (LeaderWorkerSet size)

    @property
    def kind(self) -> str:
        return KINDS.get(self.crd, self.crd)

    def accelerator_text(self) -> str:
        if not self.accelerator:
            return "none"
        row = tables.accelerator(self.provider, self.accelerator["accelerator"])
        if "topology" in self.accelerator:
            return f"{row['device']} {self.accelerator['topology']}"
        per_pod = f"{self.accelerator['count']} x {row['device']}"
        return f"{self.group} pods x {per_pod}" if self.group > 1 else per_pod


def _accelerator(entry_dir: Path) -> Optional[dict]:
    """The Accelerator spec of the first accelerator component the entry uses
    (an llm-d entry's: its ModelService's accelerator, per decode pod)."""
    modelservice = entry_dir / "modelservice.yaml"
    if modelservice.exists():
        spec = yamlio.load(modelservice.read_text())["spec"]
        decode = spec.get("decode") or spec.get("prefill") or {}
        accel = decode.get("accelerator") or spec.get("accelerator") or {}
        return {**accel, "count": (decode.get("parallelism") or {}).get("tensor", 1)}
    kustomization = yamlio.load((entry_dir / "kustomization.yaml").read_text()) or {}
    for ref in kustomization.get("components") or []:
        config = (entry_dir / ref).resolve() / "accelerator.yaml"
        if "components/accelerators/" in str(config) and config.exists():
            return yamlio.load(config.read_text())["spec"]
    return None


def _group_size(entry_dir: Path) -> int:
    """Pods per replica, read from the rendered model base (it runs no functions)."""
    base = entry_dir.parent / "base"
    if not (base / "kustomization.yaml").exists():
        return 1
    for doc in render(base):
        if doc.get("kind") == "LeaderWorkerSet":
            return int(doc["spec"]["leaderWorkerTemplate"].get("size", 1))
    return 1


def memory_fit(entry: Entry, root: Path = ROOT) -> Optional[memory.Fit]:
    """The entry's memory fit (krm_functions/memory.py), as the Accelerator function checks it
    at build time: the server container of the model base (its context and memory settings)
    on the entry's accelerator; an llm-d entry's decode role."""
    if not entry.accelerator or entry.model not in tables.table("models"):
        return None
    server, model = tables.server(entry.server), tables.model(entry.model)
    accel = tables.accelerator(entry.provider, entry.accelerator["accelerator"])
    per_pod, hosts, _ = accelerator.devices(accel, entry.accelerator)
    tensor, pipeline = accelerator.parallel_sizes(server, accel["type"] == "gpu", per_pod, hosts, entry.group)
    return memory.check(server, model, accel, _base_container(entry, server, root), tensor, pipeline,
                        server.get("contextLengthEnv"), None, entry.model)


def _base_container(entry: Entry, server: dict, root: Path) -> dict:
    """The server container as the model base declares it (no functions run there)."""
    base = root / entry.path.parent / "base"
    if not (base / "kustomization.yaml").exists():
        return {}
    for doc in render(base):
        for tmpl in KubeObject(doc).pod_templates():
            container = (tmpl.container(server["containerName"]) or tmpl.container("kserve-container")
                         or tmpl.container(KSERVE_LLM_CONTAINER))
            if container is not None and tmpl.role != "worker":
                return container
    return {}


def entries(root: Path = ROOT) -> list[Entry]:
    providers = set(tables.table("accelerators")["providers"])
    found = []
    for kustomization in sorted((root / "serving-catalog").glob("*/*/*/*/*/kustomization.yaml")):
        entry_dir = kustomization.parent
        platform, crd, server, model, provider = entry_dir.relative_to(root / "serving-catalog").parts
        if provider in providers:
            found.append(Entry(entry_dir.relative_to(root), platform, crd, server, model, provider,
                               _accelerator(entry_dir), _group_size(entry_dir)))
    return found


def markdown(root: Path = ROOT) -> str:
    rows = entries(root)
    lines = ["# Catalog", "",
             "Generated by `make generate` from the tree and `krm_functions/data/*.yaml`; do not edit.",
             "Render an entry with `kubectl kustomize --enable-alpha-plugins <path>` (functions run in containers).", "",
             "Memory: the model and one sequence at the entry's context fit its accelerators "
             "(checked at build time; KV cache left per device, in tokens).", "",
             "Benchmark: `make benchmark ENTRY=<path> | kubectl apply -f -` runs kubernetes-sigs/inference-perf "
             "against the entry (krm_functions/benchmark).", "",
             "| Kind | Model Server | Model | Provider | Accelerator | Memory | Benchmark | README |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for e in rows:
        server = tables.table("servers").get(e.server, {}).get("title", e.server)
        readme = f"[{e.path}]({e.path}/README.md)"
        fit = memory_fit(e, root)
        headroom = f"{fit.summary()} at {fit.context // 1024}k context" if fit else "n/a"
        bench = benchmark.status(e.server, e.crd)[1]
        lines.append(f"| {e.kind} | {server} | {e.model} | {e.provider} | {e.accelerator_text()} | {headroom} "
                     f"| {bench} | {readme} |")
    lines += ["", f"{len(rows)} entries.", ""] + matrix(rows) + [""] + accelerator_menu()
    return "\n".join(lines)


def accelerator_menu() -> list[str]:
    """Every accelerator the tables offer, as an Accelerator intent names it."""
    lines = ["## Accelerators", "",
             "What an `Accelerator` intent can name (`provider`, `accelerator`, and `count` or `topology`; "
             "README, Customize an entry). Entries use Components for some of them (`components/accelerators/`).", "",
             "| provider | accelerator | device | count (machine) or topology (hosts x machine) |",
             "| --- | --- | --- | --- |"]
    for accel in tables.accelerators():
        if accel["type"] == "gpu":
            offers = ", ".join(f"{count} ({machine})" for count, machine in accel["machines"].items())
        else:
            offers = ", ".join(f"{topology} ({row['hosts']} x {row['machineType']})"
                               for topology, row in accel["topologies"].items())
        lines.append(f"| {accel['provider']} | `{accel['name']}` | {accel['device']} | {offers} |")
    return lines


def matrix(rows: list[Entry]) -> list[str]:
    """Model x server, each cell the providers and accelerators that exist."""
    servers = sorted({e.server for e in rows})
    titles = [tables.table("servers").get(s, {}).get("title", s) for s in servers]
    lines = ["## What exists, at a glance", "",
             "| Model | " + " | ".join(titles) + " |", "| --- |" + " --- |" * len(servers)]
    for model in sorted({e.model for e in rows}):
        cells = []
        for server in servers:
            found = [e for e in rows if e.model == model and e.server == server]
            cells.append("<br>".join(f"[{e.provider}: {e.accelerator_text()}{' (LWS)' if e.crd == 'lws' else ''}]"
                                     f"({e.path})" for e in found))
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return lines + [""]
