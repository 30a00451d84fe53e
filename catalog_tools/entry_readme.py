"""Entry READMEs, generated from what the entry renders to and the data tables,
so that they never disagree with the manifests."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Optional

import jinja2

from krm_functions import lora, tables
from krm_functions.krmfn import KubeObject, yamlio
from krm_functions.model_source import build as model_build
from krm_functions.workloads import KSERVE_LLM_CONTAINER, get_arg, get_env, get_param

from .catalog import Entry, memory_fit
from .conformance.check import Rendered, caveats
from .render import ROOT, render

TEMPLATES = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                               undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def _env(container: dict, name: str) -> str:
    return get_env(container, name) or ""


def _parallel_args(server_row: dict, container: dict) -> tuple[str, str]:
    """Tensor and pipeline sizes as rendered, read the way the Accelerator function wrote them."""
    settings = server_row.get("parallelism") or {}
    tp, pp = (get_param(container, settings.get(kind) or {}) or "" for kind in ("tensor", "pipeline"))
    return tp, pp


def _node_pool(provider: dict, accel_row: dict, machine: str, nodes: int, count=None, topology=None) -> str:
    """The provider's node-pool command (accelerators table), or "" where it has none."""
    template = (provider.get("nodePool") or {}).get(accel_row["type"])
    if not template:
        return ""
    text = template.format(accelerator=accel_row["name"], machine=machine, nodes=nodes, count=count,
                           topology=topology)
    if "\n" in text:  # a script of its own (a config file and a command)
        return text
    if accel_row.get("nodePoolFlags"):  # what the device needs of its nodes (AKS AMD GPUs: no NVIDIA driver)
        text += " " + accel_row["nodePoolFlags"]
    rule = next((r for r in provider.get("capacity") or [] if machine in r["machines"]), None)
    if rule:  # not offered on demand: ask for the capacity it is offered as
        text += " " + rule["flags"]
    command = " \\\n  ".join(textwrap.wrap(text, 100, break_long_words=False, break_on_hyphens=False))
    if not rule:
        return command
    note = textwrap.wrap(" ".join(rule["note"].format(machine=machine).split()), 98)
    return "\n".join(f"# {line}" for line in note) + "\n" + command


def _verify(server_row: dict, model: str) -> tuple[str, str]:
    """The servers table's check request: path and JSON body (with the served model name)."""
    verify = server_row["verify"]
    body = dict(verify["body"], **({"model": model} if verify.get("model") else {}))
    return verify["path"], json.dumps(body)


def _scrape(objs: list[KubeObject], server_row: dict) -> str:
    metrics = server_row["metrics"]
    return next((f"{o.kind} `{o.name}` (`{metrics['path']}` on port `{metrics['port']}`)"
                 for o in objs if o.kind in ("PodMonitoring", "PodMonitor", "ServiceMonitor")), "none")


def about(entry: Entry, root: Path = ROOT) -> str:
    """The entry's own words: the comment block its kustomization.yaml opens with."""
    lines = []
    for line in (root / entry.path / "kustomization.yaml").read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    return " ".join(lines)


def _memory_text(entry: Entry, root: Path) -> str:
    fit = memory_fit(entry, root)
    if fit is None:
        return "not checked (no models table row)"
    return (f"{fit.summary()} per device at context {fit.context}: {fit.weights_gib:.1f} GiB of weights and "
            f"{fit.overhead_gib:.1f} GiB of overhead in {fit.budget_gib:.1f} GiB (memory fraction "
            f"{fit.fraction:g} of {fit.device_gib:g} GiB); checked when the entry is built")


def facts(entry: Entry, root: Path = ROOT) -> dict:
    objs = [KubeObject(d) for d in render(root / entry.path)]
    by_kind = {o.kind: o for o in objs}
    server_row, model_row = tables.server(entry.server), tables.model(entry.model)
    provider = tables.provider(entry.provider)
    workload = by_kind.get("Deployment") or by_kind["LeaderWorkerSet"]
    tmpl = workload.pod_templates()[0]
    container = tmpl.container(server_row["containerName"])
    group = workload.get("spec", "leaderWorkerTemplate", "size", default=1)
    accel_spec = entry.accelerator or {}
    accel_row = tables.accelerator(entry.provider, accel_spec["accelerator"])
    count = accel_spec.get("count")
    machine = accel_row["machines"][count] if count else accel_row["topologies"][accel_spec["topology"]]["machineType"]
    pvc, job, service = by_kind["PersistentVolumeClaim"], by_kind["Job"], by_kind["Service"]
    hpa = by_kind.get("HorizontalPodAutoscaler")
    metric = hpa.get("spec", "metrics", 0, "pods", "metric", "name")
    tp, pp = _parallel_args(server_row, container)
    node_pool = _node_pool(provider, accel_row, machine, group, count, accel_spec.get("topology"))
    verify_path, verify_body = _verify(server_row, model_row["hfId"])
    build = server_row.get("modelBuild")
    context = _env(container, "MAX_MODEL_LEN") or get_arg(container, "max_target_length") or ""
    if not context and build:  # set by the build (Triton's engine: the models table's maxModelLen)
        context = f"{model_row['maxModelLen']} (built into the engine)"
    scrape = _scrape(objs, server_row)
    return {
        "entry": entry, "server": server_row, "model": model_row, "provider": provider, "kind": workload.kind,
        "workload": workload.name, "group": group, "context": context, "memory_fit": _memory_text(entry, root),
        "verify_path": verify_path, "verify_body": verify_body,
        "ready_path": _ready_path(tmpl.containers(), service.get("spec", "ports", 0, "targetPort")),
        "model_flags": (server_row.get("modelFlags") or {}).get(model_row.get("family"), []),
        "built": build["summary"] if build else "",
        # A build from Kaggle needs the Kaggle API key instead of the HF token.
        "kaggle": model_build.kaggle_handle(model_build.model_section(build, model_row, entry.model, entry.server))
        if build else None,
        "accelerator": entry.accelerator_text(), "machine": machine, "node_pool": node_pool,
        "parallelism": ", ".join(p for p in (f"tensor {tp}" if tp else "", f"pipeline {pp}" if pp else "") if p) or "none",
        "cpu": container["resources"]["requests"]["cpu"], "memory": container["resources"]["requests"]["memory"],
        "pvc": {"name": pvc.name, "size": pvc.get("spec", "resources", "requests", "storage"),
                "access": ", ".join(pvc.get("spec", "accessModes", default=[])),
                "class": pvc.get("spec", "storageClassName", default="")},
        "job": job.name, "service": service.name, "port": service.get("spec", "ports", 0, "port"),
        "gmp": str(metric).startswith("prometheus.googleapis.com|"),
        "hpa": {"kind": hpa.kind, "name": hpa.name, "min": hpa.get("spec", "minReplicas"),
                "max": hpa.get("spec", "maxReplicas"), "metric": metric,
                "selector": ", ".join(f"{k}={v}" for k, v in (hpa.get("spec", "metrics", 0, "pods", "metric",
                                                                      "selector", "matchLabels") or {}).items()),
                "target": hpa.get("spec", "metrics", 0, "pods", "target", "averageValue")},
        "scrape": scrape, "gpu_setup": _gpu_setup(provider, accel_row),
        "job_node": _job_node(job) if build else None,
    }


def _job_node(job: KubeObject) -> Optional[dict]:
    """What a model-build Job that asks for no accelerator needs of a node outside the
    accelerator pool (the local control plane found none named: a cluster's default pool
    is often smaller)."""
    containers = job.get("spec", "template", "spec", "containers", default=[])
    limits = {k for c in containers for k in ((c.get("resources") or {}).get("limits") or {})}
    if any("/" in k for k in limits) or any((c.get("resources") or {}).get("claims") for c in containers):
        return None
    requests = (containers[0].get("resources") or {}).get("requests") or {}
    return {"name": job.name, "cpu": requests.get("cpu"), "memory": requests.get("memory")}


def _gpu_setup(provider: dict, accel_row: dict) -> str:
    """What the nodes need for the device: the accelerator row's own setup, else the provider's."""
    return accel_row.get("setup") or provider.get("gpuSetup", "") if accel_row["type"] == "gpu" else ""


def kserve_facts(entry: Entry, root: Path = ROOT) -> dict:
    objs = [KubeObject(d) for d in render(root / entry.path)]
    by_kind = {o.kind: o for o in objs}
    isvc, runtime = by_kind["InferenceService"], by_kind["ServingRuntime"]
    server_row, model_row = tables.server(entry.server), tables.model(entry.model)
    provider = tables.provider(entry.provider)
    model = isvc.get("spec", "predictor", "model")
    accel_row = tables.accelerator(entry.provider, entry.accelerator["accelerator"])
    machine = accel_row["machines"][entry.accelerator["count"]]
    node_pool = _node_pool(provider, accel_row, machine, 1, entry.accelerator["count"])
    tp, _ = _parallel_args(server_row, model)
    external = isvc.get("spec", "predictor", "autoScaling", "metrics", 0, "external")
    verify_path, verify_body = _verify(server_row, isvc.name)
    scrape = _scrape(objs, server_row)
    return {
        "entry": entry, "server": server_row, "model": model_row, "provider": provider, "isvc": isvc.name,
        "runtime": runtime.name, "storage_uri": model["storageUri"], "context": _env(model, "MAX_MODEL_LEN"),
        "memory_fit": _memory_text(entry, root),
        "accelerator": entry.accelerator_text(), "machine": machine, "node_pool": node_pool,
        "parallelism": f"tensor {tp}" if tp else "none",
        "cpu": model["resources"]["requests"]["cpu"], "memory": model["resources"]["requests"]["memory"],
        "min": isvc.get("spec", "predictor", "minReplicas"), "max": isvc.get("spec", "predictor", "maxReplicas"),
        "query": external["metric"]["query"], "server_address": external["metric"]["serverAddress"],
        "target": external["target"]["averageValue"], "scrape": scrape,
        "service_account": isvc.get("spec", "predictor", "serviceAccountName"),
        "verify_path": verify_path, "verify_body": verify_body,
        # KServe's predictor Service routes to the runtime container's first port.
        "ready_path": _ready_path(runtime.get("spec", "containers"),
                                  runtime.get("spec", "containers", 0, "ports", 0, "containerPort")),
    }


def _ready_path(containers: list, port) -> str:
    """The HTTP readiness path of the container serving `port` (a port name or number), as
    the base writes it (its one home)."""
    for c in containers:
        if any(port in (p.get("name"), p.get("containerPort")) for p in c.get("ports") or []):
            path = ((c.get("readinessProbe") or {}).get("httpGet") or {}).get("path")
            if path:
                return path
    raise ValueError(f"no container serving port {port} has an HTTP readinessProbe")


def llmd_facts(entry: Entry, root: Path = ROOT) -> dict:
    objs = [KubeObject(d) for d in render(root / entry.path)]
    config = KubeObject(yamlio.load((root / entry.path / "modelservice.yaml").read_text()))
    spec, name = config.get("spec"), config.name
    provider = tables.provider(spec["accelerator"]["provider"])
    accel_row = tables.accelerator(spec["accelerator"]["provider"], spec["accelerator"]["accelerator"])
    hpas = {o.get("spec", "scaleTargetRef", "name"): o for o in objs if o.kind == "HorizontalPodAutoscaler"}
    roles = []
    for role in ("prefill", "decode"):
        if role not in spec:
            continue
        deployment = f"{name}-{role}"
        tensor = (spec[role].get("parallelism") or {}).get("tensor", 1)
        hpa = hpas.get(deployment)
        roles.append({"name": role, "deployment": deployment, "replicas": spec[role].get("replicas", 1),
                      "tensor": tensor, "accelerator": f"{tensor} x {accel_row['device']}",
                      "hpa": f"{hpa.get('spec', 'minReplicas')}–{hpa.get('spec', 'maxReplicas')} replicas" if hpa else ""})
    machine = accel_row["machines"][max(r["tensor"] for r in roles)]
    node_pool = _node_pool(provider, accel_row, machine, sum(r["replicas"] for r in roles), max(r["tensor"] for r in roles))
    by_kind = {o.kind: o for o in objs}
    pvc, job = by_kind["PersistentVolumeClaim"], by_kind["Job"]
    images = sorted({c.get("image") for o in objs for t in o.pod_templates()
                     for c in (t.spec.get("initContainers") or []) + t.containers() if c.get("image")})
    pool = by_kind["InferencePool"]
    hpa = next(iter(hpas.values()), None)
    return {
        "entry": entry, "name": name, "namespace": config.namespace, "provider": provider,
        "memory_fit": _memory_text(entry, root),
        "model_name": spec["routing"]["modelName"], "gateway": spec["routing"]["gatewayRefs"][0]["name"],
        "roles": roles, "machine": machine, "node_pool": node_pool, "images": [f"`{i}`" for i in images],
        "pvc": {"name": pvc.name, "size": pvc.get("spec", "resources", "requests", "storage"),
                "class": pvc.get("spec", "storageClassName")},
        "job": job.name, "pool": pool.name, "port": pool.get("spec", "targetPorts", 0, "number"),
        "epp": pool.get("spec", "endpointPickerRef", "name"), "route": by_kind["HTTPRoute"].name,
        "metric": hpa.get("spec", "metrics", 0, "pods", "metric", "name") if hpa else "",
        "backend_policies": [o for o in objs if o.group == "networking.gke.io"], "gpu_setup": _gpu_setup(provider, accel_row),
        "adapters": [a["name"] for a in spec["modelArtifacts"].get("adapters") or []],
        "adapter_rows": _adapter_rows(spec["modelArtifacts"].get("adapters") or [], entry.model),
    }


def _adapter_rows(items: list, model: str) -> list[dict]:
    """Each adapter's name and uri, resolved as the functions resolve them (krm_functions/lora.py)."""
    return [{"name": a.name, "uri": a.source.uri} for a in lora.resolve(items, tables.model(model), model)]


def kserve_llm_facts(entry: Entry, root: Path = ROOT) -> dict:
    objs = [KubeObject(d) for d in render(root / entry.path)]
    llmisvc = next(o for o in objs if o.kind == "LLMInferenceService")
    server_row, model_row = tables.server(entry.server), tables.model(entry.model)
    provider = tables.provider(entry.provider)
    accel_row = tables.accelerator(entry.provider, entry.accelerator["accelerator"])
    count = entry.accelerator["count"]
    roles = []
    for tmpl in llmisvc.pod_templates():
        main = tmpl.container(KSERVE_LLM_CONTAINER)
        roles.append({"name": tmpl.role or ("decode" if llmisvc.get("spec", "prefill", default=None) else "server"),
                      "replicas": tmpl.meta.get("replicas", 1), "tensor": (tmpl.meta.get("parallelism") or {}).get("tensor", 1),
                      "accelerator": f"{count} x {accel_row['device']}",
                      "cpu": main["resources"]["requests"]["cpu"], "memory": main["resources"]["requests"]["memory"]})
    main = llmisvc.pod_templates()[0].container(KSERVE_LLM_CONTAINER)
    machine = accel_row["machines"][count]
    verify_path, verify_body = _verify(server_row, llmisvc.get("spec", "model", "name"))
    return {
        "entry": entry, "server": server_row, "model": model_row, "provider": provider, "name": llmisvc.name,
        "uri": llmisvc.get("spec", "model", "uri"), "served": llmisvc.get("spec", "model", "name"),
        "context": _env(main, "MAX_MODEL_LEN"), "memory_fit": _memory_text(entry, root),
        "model_flags": (server_row.get("modelFlags") or {}).get(model_row.get("family"), []),
        "roles": roles, "prefill": len(roles) > 1, "machine": machine,
        "node_pool": _node_pool(provider, accel_row, machine, sum(r["replicas"] for r in roles), count),
        "service_account": llmisvc.get("spec", "template", "serviceAccountName"),
        "verify_path": verify_path, "verify_body": verify_body,
    }


def readme(entry: Entry, root: Path = ROOT) -> str:
    common = {"about": about(entry, root), "caveats": caveats(Rendered(str(entry.path), render(root / entry.path)))}
    if entry.crd == "modelservice":
        return TEMPLATES.get_template("llmd-entry-README.md.j2").render(**llmd_facts(entry, root), **common)
    if entry.crd == "llminferenceservice":
        return TEMPLATES.get_template("kserve-llm-entry-README.md.j2").render(**kserve_llm_facts(entry, root), **common)
    if entry.crd == "inferenceservice":
        return TEMPLATES.get_template("kserve-entry-README.md.j2").render(**kserve_facts(entry, root), **common)
    return TEMPLATES.get_template("entry-README.md.j2").render(**facts(entry, root), **common)
