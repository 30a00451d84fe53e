"""Benchmark: a kubernetes-sigs/inference-perf Job aimed at the entry's server.

For every server workload: a ConfigMap holding inference-perf's config, a claim for its
reports and a Job that runs the pinned release (krm_functions/data/benchmarks.yaml)
against the Service in front of the server's pods (or spec.url). The load profile is the
model's: prompt and output lengths within the served context, and a sweep of concurrency
levels up to the sequences the KV cache holds (the memory fit the Accelerator intent
computed). An init container waits until the server answers, so the Job can be applied
with the entry; `make benchmark ENTRY=...` renders an entry with it.
"""

from __future__ import annotations

import math
from typing import Optional

from .. import pod_security, tables
from ..krmfn import Context, Function, FunctionError
from ..krmfn import yamlio
from ..workloads import LLM_D_ROLE_LABEL, TARGET_SCHEMA, ServerTarget, hf_token_file, selects, target_key, targets

TOOL = "inference-perf"
COMPONENT = "benchmark"
# Labels of the Job's pod: the catalog's, not the server's (its Service must not select it).
JOB_LABEL = "serving-catalog.dev/benchmark"
# KServe (RawDeployment) serves an InferenceService's predictor as Service <name>-predictor
# on port 80 (pkg/constants/constants.go: PredictorServiceName, CommonDefaultHttpPort).
KSERVE_PREDICTOR = "{name}-predictor"
# The server container's API port, by name (every base names it so).
HTTP_PORT = "http"
# The OpenAI route the init container waits for: the server is up and has loaded the model.
READY_ROUTE = "/v1/models"
WAIT_FOR_SERVER = """\
import sys, time, urllib.request
url = sys.argv[1] + sys.argv[2]
while True:
    try:
        urllib.request.urlopen(url, timeout=10)
        break
    except Exception as err:
        print(f"waiting for {url}: {err}", flush=True)
        time.sleep(15)
"""

SPEC_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "tool": {"enum": [TOOL], "default": TOOL, "description": "Benchmark tool (benchmarks table row)."},
        "url": {"type": "string", "pattern": "^https?://[^/]+$",
                "description": "Base URL to benchmark (scheme://host[:port]); default: the Service in front of the "
                               "server's pods. Required where a Gateway routes to the server (an HTTPRoute): "
                               "its address is the cluster's."},
        "concurrency": {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 1},
                        "description": "Concurrency levels, one stage each; default: a sweep up to what the KV "
                                       "cache holds (the memory fit)."},
        "results": {
            "type": "object", "additionalProperties": False,
            "description": "Where reports go besides the Job's claim (<job>-results, mounted at /results).",
            "properties": {
                "gcsBucket": {"type": "string", "minLength": 3,
                              "description": "Also upload to this Google Cloud Storage bucket (Workload Identity)."},
                "s3Bucket": {"type": "string", "minLength": 3,
                             "description": "Also upload to this S3 bucket (IRSA or Pod Identity)."},
                "size": {"type": "string", "description": "Claim size; default: the benchmarks table's."},
                "storageClassName": {"type": "string", "minLength": 1},
            },
        },
        "hfTokenSecret": {
            "type": "object", "additionalProperties": False,
            "description": "Secret with the Hugging Face token for the model's tokenizer (gated models).",
            "properties": {"name": {"type": "string", "minLength": 1, "default": "hf-token"},
                           "key": {"type": "string", "minLength": 1, "default": "HF_TOKEN"}},
        },
        **TARGET_SCHEMA,
    },
}

EXAMPLE = {"results": {"gcsBucket": "my-benchmarks"}}


def transform(ctx: Context, spec: dict) -> None:
    tool = tables.benchmark(spec["tool"])
    routes = [o for o in ctx.items if o.kind == "HTTPRoute"]
    found = [t for t in targets(ctx, spec) if t.template.role != "worker"]  # an LWS group serves from its leader
    for target in found:
        if target.server_name not in tool["clients"]:
            raise FunctionError.at(target.obj, f"{target.template.labels_path}.{tables.SERVER_LABEL}",
                                   f"{spec['tool']} has no client for server {target.server_name} "
                                   f"(its clients: {', '.join(tool['clients'])})", current=target.server_name)
    # KServe's LLMInferenceService makes its own HTTPRoute (spec.router.route).
    routed = routes or [t.obj for t in found if t.obj.kind == "LLMInferenceService"
                        and t.obj.get("spec", "router", "route", default=None) is not None]
    if routed:  # one Gateway in front of every role: one benchmark, sized by the decode pods
        if not spec.get("url"):
            raise FunctionError.at(None, "spec.url", f"{routed[0].kind}/{routed[0].name} routes to the server "
                                   "through a Gateway: set spec.url to the Gateway's address "
                                   "(make benchmark ... URL=http://ADDRESS)")
        decode = [t for t in found
                  if "prefill" not in (t.template.labels.get(LLM_D_ROLE_LABEL), t.template.role)] or found
        plans = [(decode[0], spec["url"], f"{routed[0].name}-benchmark")]
    else:
        plans = [(t, spec.get("url") or _service_url(ctx, t), f"{t.obj.name}-benchmark") for t in found]
    for target, url, name in plans:
        model_row = tables.table("models").get(target.model_name or "")
        if model_row is None:
            raise FunctionError.at(target.obj, f"{target.template.labels_path}.{tables.MODEL_LABEL}",
                                   "no models table row: the benchmark needs the model's tokenizer and context")
        profile = load_profile(tool["profile"], _context(target, model_row),
                               ctx.facts.get("fits", {}).get(target_key(target)), spec.get("concurrency"))
        config = tool_config(tool, tool["clients"][target.server_name], url, target, model_row, profile,
                             spec.get("results") or {})
        _emit(ctx, target, tool, name, config, spec)
        ctx.info(f"Job/{name} runs {spec['tool']} against {url}: concurrency {profile['levels']}, "
                 f"{profile['input']['mean']}-token prompts, {profile['output']['mean']}-token outputs", target.obj)


def _context(target: ServerTarget, model_row: dict) -> int:
    env = target.server.get("contextLengthEnv")
    for e in target.container.get("env") or []:
        if e.get("name") == env and str(e.get("value", "")).isdigit():
            return int(e["value"])
    return int(model_row["maxModelLen"])


def load_profile(profile: dict, context: int, fit, levels: Optional[list]) -> dict:
    """Prompt and output lengths that fit the context, and the concurrency levels: the
    config's, else 1 and fractions of the sequences the KV cache holds, else the fallback."""
    def lengths(row: dict, cap: int) -> dict:
        top = max(min(row["max"], cap), 2)
        low = min(row["min"], top - 1)
        return {"mean": min(row["mean"], top), "std_dev": row["stdDev"], "min": low, "max": top}

    prompt = lengths(profile["inputTokens"], context // 4)
    output = lengths(profile["outputTokens"], context // 8)
    if levels is None and fit is not None:
        sequences = max(1, fit.tokens // (prompt["mean"] + output["mean"]))
        top = min(sequences, profile["maxConcurrency"])
        levels = sorted({1, *(max(1, top // d) for d in (8, 4, 2, 1))})
    levels = list(levels or profile["fallback"])
    return {"input": prompt, "output": output, "levels": levels,
            "requests": [max(profile["minRequests"], profile["requestsPerLevel"] * c) for c in levels]}


def tool_config(tool: dict, client: str, url: str, target: ServerTarget, model_row: dict, profile: dict,
                results: dict) -> dict:
    """inference-perf's config file (its v0.7.0 schema, checked by the conformance tier)."""
    total = sum(profile["requests"])
    workers = int(tool["resources"]["cpu"])
    storage: dict = {"local_storage": {"path": f"{tool['results']['mountPath']}/{{timestamp}}"}}
    remote = f"{target.obj.name}/{{timestamp}}"
    if results.get("gcsBucket"):
        storage["google_cloud_storage"] = {"bucket_name": results["gcsBucket"], "path": remote}
    if results.get("s3Bucket"):
        storage["simple_storage_service"] = {"bucket_name": results["s3Bucket"], "path": remote}
    load: dict = {"type": "concurrent", "num_workers": workers,
                  "worker_max_concurrency": max(1, math.ceil(max(profile["levels"]) / workers)),
                  "stages": [{"num_requests": n, "concurrency_level": c}
                             for n, c in zip(profile["requests"], profile["levels"])]}
    adapters = served_adapters(target)
    if adapters:  # requests spread evenly over the LoRA adapters the server serves
        splits = even_splits(len(adapters))
        load["lora_traffic_split"] = [{"name": n, "split": split} for n, split in zip(adapters, splits)]
    return {
        "api": {"type": tool["api"]["type"], "streaming": True},  # streaming: time to first token
        "data": {"type": "random",
                 "input_distribution": {**profile["input"], "total_count": total},
                 "output_distribution": {**profile["output"], "total_count": total}},
        "load": load,
        "server": {"type": client, "model_name": _served_name(target, model_row), "base_url": url,
                   "ignore_eos": True},
        "tokenizer": {"pretrained_model_name_or_path": model_row["hfId"]},
        "report": {"request_lifecycle": {"summary": True, "per_stage": True, "per_request": False}},
        "storage": storage,
    }


def even_splits(count: int) -> list[float]:
    """`count` equal shares whose float sum is exactly 1.0, as the release checks (==): the
    last takes the rest."""
    splits = [1 / count] * (count - 1)
    return splits + [1.0 - sum(splits)]


def served_adapters(target: ServerTarget) -> list[str]:
    """The LoRA adapters the server container lists (servers table `lora.modules` NAME=PATH words)."""
    lora = target.server.get("lora")
    args = [str(a) for a in target.container.get("args") or []]
    if not lora or lora["modules"] not in args:
        return []
    names = []
    for word in args[args.index(lora["modules"]) + 1:]:
        if word.startswith("--"):
            break
        names.append(word.split("=", 1)[0])
    return names


def _served_name(target: ServerTarget, model_row: dict) -> str:
    for e in target.container.get("env") or []:
        if e.get("name") == "SERVED_MODEL_NAME" and e.get("value"):
            return str(e["value"])
    return model_row["hfId"]


def _service_url(ctx: Context, target: ServerTarget) -> str:
    if target.obj.kind == "InferenceService":
        return f"http://{KSERVE_PREDICTOR.format(name=target.obj.name)}:80"
    labels = {**target.obj.labels, **target.template.labels}
    number = next((p.get("containerPort") for p in target.container.get("ports") or []
                   if p.get("name") == HTTP_PORT), None)
    for service in ctx.items:
        if (service.kind != "Service" or service.namespace != target.obj.namespace
                or not selects(service.get("spec", "selector", default=None) or {}, labels)):
            continue
        for port in service.get("spec", "ports", default=None) or []:
            if port.get("targetPort", port.get("port")) in (HTTP_PORT, number):
                return f"http://{service.name}:{port['port']}"
    raise FunctionError.at(target.obj, "metadata.name", f"no Service selects the pods of {target.obj.kind}/"
                           f"{target.obj.name} on their {HTTP_PORT} port: add one, or set spec.url")


def _emit(ctx: Context, target: ServerTarget, tool: dict, name: str, config: dict, spec: dict) -> None:
    obj = target.obj
    labels = {k: v for k, v in obj.labels.items() if k.startswith(("app.kubernetes.io/", "serving-catalog.dev/"))
              and k != tables.SERVER_LABEL}
    labels.update({"app.kubernetes.io/component": COMPONENT, JOB_LABEL: spec["tool"]})
    meta = {"labels": labels, **({"namespace": obj.namespace} if obj.namespace else {})}
    results = spec.get("results") or {}
    claim_spec: dict = {"accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": results.get("size", tool["results"]["size"])}}}
    if results.get("storageClassName"):
        claim_spec["storageClassName"] = results["storageClassName"]
    ctx.add({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, **meta},
             "data": {"config.yml": yamlio.dump(config)}})
    ctx.add({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": f"{name}-results", **meta},
             "spec": claim_spec})
    secret = {"name": "hf-token", "key": "HF_TOKEN", **(spec.get("hfTokenSecret") or {})}
    env, mounts, volumes = hf_token_file(secret)
    config_dir = "/etc/inference-perf"
    container = {
        "name": spec["tool"],
        "image": tool["image"],
        # Then print the run's summary, so `kubectl logs job/...` shows it (all reports stay on the claim).
        "command": ["sh", "-c", f'{" ".join(tool["program"])} "$1" || exit; '
                    f'cat "$(ls -td {tool["results"]["mountPath"]}/*/ | head -1)summary_lifecycle_metrics.json"',
                    "benchmark", f"{config_dir}/config.yml"],
        "env": [*env, {"name": "HF_HOME", "value": "/tmp/hf-home"}],
        "resources": {"requests": dict(tool["resources"]), "limits": {"memory": tool["resources"]["memory"]}},
        "volumeMounts": [{"name": "config", "mountPath": config_dir, "readOnly": True},
                         {"name": "results", "mountPath": tool["results"]["mountPath"]}, *mounts],
    }
    wait = {"name": "wait-for-server", "image": tool["image"],
            "command": ["python3", "-c", WAIT_FOR_SERVER, config["server"]["base_url"], READY_ROUTE],
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "128Mi"}}}
    pod = {"restartPolicy": "Never", "initContainers": [wait], "containers": [container],
           "volumes": [{"name": "config", "configMap": {"name": name}},
                       {"name": "results", "persistentVolumeClaim": {"claimName": f"{name}-results"}}, *volumes]}
    # The tool writes its reports, the tokenizer cache and temp files only (HOME, /tmp, /results).
    hardened = pod_security.restrict(pod, {"security": {"readOnlyRootFilesystem": True}})
    ctx.add({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, **meta},
             "spec": {"backoffLimit": 0,
                      "template": {"metadata": {"labels": {JOB_LABEL: spec["tool"], **pod_security.POD_LABELS}},
                                   "spec": hardened}}})


FUNCTION = Function(
    kind="Benchmark",
    summary="run kubernetes-sigs/inference-perf against the entry's server: a Job, its config and a claim for reports",
    spec_schema=SPEC_SCHEMA,
    example=EXAMPLE,
    transform=transform,
)
