"""ModelSource: where the server reads its model weights from.

hf:// sources get a PersistentVolumeClaim and a download Job (generated here), or a
build Job for servers that load something built from the weights (build.py);
gs://, pvc:// and oci:// sources are mounted straight into the server pods.
In every case the server container's model env var (the servers table's
`modelEnv`, MODEL_ID) points at the local weights.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

from .. import lora, pod_security, tables
from ..krmfn import Context, Function, FunctionError, KubeObject
from ..sources import SCHEMES, Source, parse_uri
from . import build as model_build
from ..workloads import TARGET_SCHEMA, ServerTarget, add_flags, add_mount, add_volume, get_env, hf_token_file, set_env, targets

PREREQUISITE_LABEL = "prerequisite"
PREREQUISITE = "model-load"
VOLUME = "model-weights"
JOB_MOUNT = "/models"  # where the download Job mounts the claim; the server mounts it at spec.mountPath
GCSFUSE_ANNOTATION = "gke-gcsfuse/volumes"
GCSFUSE_DRIVER = "gcsfuse.csi.storage.gke.io"
COPIED_LABEL_PREFIXES = ("app.kubernetes.io/", "serving-catalog.dev/")
# The Secret key of the Hugging Face token: KServe's storage initializer reads HF_TOKEN
# (kserve pkg/credentials/hf: HFTokenKey), and the download Jobs read the same key.
HF_TOKEN_KEY = "HF_TOKEN"
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")

SPEC_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "uri": {"type": "string", "minLength": 1,
                "description": f"Where the weights are: {SCHEMES}. Default: hf://<hfId> of the models "
                               f"table row named by the pods' {tables.MODEL_LABEL} label."},
        "model": {"type": "string", "minLength": 1,
                  "description": f"Models table row; default: the pods' {tables.MODEL_LABEL} label. Gives the "
                                 "default uri and the default volume size."},
        "name": {"type": "string", "minLength": 1, "maxLength": 50,
                 "description": "One claim and one Job for every selected workload, their names based on this "
                                "(llm-d's roles share one). Default: one each, named after the workload."},
        "contextLength": {"type": "integer", "minimum": 1,
                          "description": "Context length the server serves (its contextLengthEnv, e.g. MAX_MODEL_LEN). "
                                         "Default: what the entry sets, else the models table's maxModelLen. "
                                         "Checked against the accelerators' memory when rendered with Render."},
        "revision": {"type": "string", "minLength": 1,
                     "description": "Hugging Face revision (branch, tag or commit) to download; hf:// only. "
                                    "Default: the repository's default branch."},
        "storage": {
            "type": "object", "additionalProperties": False,
            "description": "The PersistentVolumeClaim the download Job fills; hf:// only.",
            "properties": {
                "size": {"type": "string",
                         "description": "Claim size (a quantity, e.g. 200Gi). Default: the model's weights "
                                        "(parameters x dtype bytes) plus 20% and 10Gi, rounded up to 10Gi."},
                "storageClassName": {"type": "string", "minLength": 1,
                                     "description": "Storage class of the claim; default: the cluster's default class."},
                "accessMode": {"type": "string", "enum": ["ReadWriteOnce", "ReadWriteMany", "ReadOnlyMany"],
                               "default": "ReadWriteMany",
                               "description": "Access mode of the claim. ReadWriteMany (default): replicas on "
                                              "several nodes read the same weights, written once by the Job; "
                                              "the storage class must support it."},
            },
        },
        "hfTokenSecret": {
            "type": "object", "additionalProperties": False,
            "description": "Secret holding the Hugging Face token the download Job uses (gated models); hf:// only.",
            "properties": {
                "name": {"type": "string", "minLength": 1, "default": "hf-token", "description": "Secret name; default hf-token."},
                "key": {"type": "string", "minLength": 1, "default": HF_TOKEN_KEY,
                        "description": f"Key in the Secret; default {HF_TOKEN_KEY}, the key KServe's storage "
                                       "initializer reads, so one Secret serves every entry of a namespace."},
            },
        },
        "adapters": lora.SCHEMA,
        "mountPath": {"type": "string", "default": "/models",
                      "description": "Absolute path where the server container mounts the weights (read-only)."},
        **TARGET_SCHEMA,
    },
}

EXAMPLE = {"uri": "hf://google/gemma-2b", "storage": {"storageClassName": "standard-rwx"}}


@dataclass
class Plan:
    """What one workload gets: the source and the model row it came from."""

    source: Source
    model_name: Optional[str]
    model_row: Optional[dict]
    targets: list[ServerTarget] = field(default_factory=list)
    name: str = ""  # base of the generated objects' names; default: the workload's
    adapters: list = field(default_factory=list)  # LoRA adapters (lora.Adapter)

    @property
    def base_name(self) -> str:
        return self.name or self.targets[0].obj.name


def _check_fields(spec: dict) -> None:
    """Format checks the schema would report only as 'does not match <regexp>'."""
    size = (spec.get("storage") or {}).get("size")
    if size is not None and not _QUANTITY.match(size):
        raise FunctionError.at(None, "spec.storage.size", f"{size!r} is not a Kubernetes quantity "
                               f"(e.g. 200Gi or 1Ti)", current=size)
    mount = spec["mountPath"]
    if not mount.startswith("/") or mount.rstrip("/") == "":
        raise FunctionError.at(None, "spec.mountPath", f"{mount!r} must be an absolute path other than / "
                               f"(e.g. /models)", current=mount)
    spec["mountPath"] = mount.rstrip("/")


def transform(ctx: Context, spec: dict) -> None:
    _check_fields(spec)
    config_source = parse_uri(spec["uri"]) if "uri" in spec else None
    if config_source is not None and config_source.scheme != "hf":
        for name in ("revision", "storage", "hfTokenSecret"):
            if name in spec:
                raise FunctionError.at(None, f"spec.{name}", f"applies to hf:// sources only, "
                                       f"not {config_source.scheme}:// (nothing is downloaded)")
    config_row = tables.model(spec["model"], None, "spec.model") if "model" in spec else None

    plans: dict[int, Plan] = {}
    for target in targets(ctx, spec):
        plan = _plan(target, spec, config_source, config_row)
        previous = plans.setdefault(id(target.obj), plan)
        if previous is not plan and previous.source.uri != plan.source.uri:
            raise FunctionError.at(target.obj, f"{target.template.labels_path}.{tables.MODEL_LABEL}",
                                   f"the pod templates of one workload name different models "
                                   f"({previous.source.uri}, {plan.source.uri}); set spec.uri")
        previous.targets.append(target)

    if spec.get("name"):  # one set of weights for all of them
        merged = list(plans.values())
        if len({p.source.uri for p in merged}) > 1:
            raise FunctionError.at(None, "spec.name", "the selected workloads name different models "
                                   f"({', '.join(sorted({p.source.uri for p in merged}))}): one claim cannot hold them")
        first = merged[0]
        plans = {0: Plan(first.source, first.model_name, first.model_row,
                         [t for p in merged for t in p.targets], name=spec["name"])}
    for plan in plans.values():
        apply_plan(ctx, plan, spec)


def apply_plan(ctx: Context, plan: Plan, spec: dict) -> str:
    """Load one source's weights for the plan's server containers; the local model path.
    Also the entry point for generators that own several workloads of one model (llm-d)."""
    obj = plan.targets[0].obj
    if spec.get("adapters"):
        if obj.kind in ("InferenceService", "LLMInferenceService"):
            raise FunctionError.at(None, "spec.adapters", f"{obj.kind}/{obj.name}: LoRA adapters are served here "
                                   "from Deployments, LeaderWorkerSets and llm-d ModelServices")
        plan.adapters = lora.resolve(spec["adapters"], plan.model_row, plan.model_name)
    if obj.kind == "InferenceService":
        _kserve_storage(ctx, plan, spec)
        return "/mnt/models"
    if obj.kind == "LLMInferenceService":
        _kserve_llm_storage(ctx, plan, spec)
        return "/mnt/models"
    local_path = _mount_source(plan, spec)
    if plan.adapters:
        for target in plan.targets:
            if target.template.role != "worker":
                lora.serve(target, plan.adapters, spec["mountPath"] if plan.source.scheme == "hf" else None)
        served = ", ".join(f"{a.name} ({a.source.uri})" for a in plan.adapters)
        ctx.info(f"{obj.kind}/{obj.name}: LoRA adapters {served}", obj)
    if plan.source.scheme == "hf":
        claim, job = _generate(ctx, plan, spec)
        what = "downloaded and built" if "modelBuild" in plan.targets[0].server else "downloaded"
        ctx.info(f"{obj.kind}/{obj.name}: weights of {plan.source.uri} {what} by Job/{job} "
                 f"into PersistentVolumeClaim/{claim}, read at {local_path}", obj)
    else:
        ctx.info(f"{obj.kind}/{obj.name}: weights of {plan.source.uri} read at {local_path}", obj)
    return local_path


def _plan(target: ServerTarget, spec: dict, source: Optional[Source], row: Optional[dict]) -> Plan:
    """The source and model of one server pod template."""
    obj, tmpl = target.obj, target.template
    label_path = f"{tmpl.labels_path}.{tables.MODEL_LABEL}"
    name = spec.get("model") or target.model_name
    if row is None and name:
        # The pods' label is read only when the table is needed: for the uri or the volume size.
        needs_row = source is None or (source.scheme == "hf" and (
            "size" not in (spec.get("storage") or {}) or "modelBuild" in target.server))
        row = tables.model(name, obj, label_path) if needs_row else None
    if source is None:
        if not name:
            raise FunctionError.at(obj, label_path, f"no {tables.MODEL_LABEL} label on the pods and no spec.uri: "
                                   f"set spec.uri (or spec.model) to say which weights to load")
        source = parse_uri(f"hf://{row['hfId']}")
    return Plan(source, name, row)


def _served_name(plan: Plan) -> str:
    if plan.source.scheme == "hf":
        return plan.source.repo
    return plan.model_name or plan.source.default_served_name


def _mount_source(plan: Plan, spec: dict) -> str:
    """Mount the weights into every server container of the plan; returns the local model path."""
    source, mount = plan.source, spec["mountPath"]
    if source.scheme == "hf":
        volume = {"persistentVolumeClaim": {"claimName": _claim_name(plan), "readOnly": True}}
        local_path = f"{mount}/{source.repo}"
        build = plan.targets[0].server.get("modelBuild")
        if build:  # the server loads what the model-load Job builds from the weights
            section = model_build.model_section(build, plan.model_row, plan.model_name, plan.targets[0].server_name)
            local_path = model_build.server_path(local_path, build)
            for target in plan.targets:  # e.g. JetStream's model config name and tokenizer
                for env, key in (build.get("serverEnv") or {}).items():
                    set_env(target.container, env, section[key])
    elif source.scheme == "gs":
        options = "implicit-dirs" + (f",only-dir={source.path}" if source.path else "")
        volume = {"csi": {"driver": GCSFUSE_DRIVER, "readOnly": True,
                          "volumeAttributes": {"bucketName": source.bucket, "mountOptions": options}}}
        local_path = mount
    elif source.scheme == "pvc":
        volume = {"persistentVolumeClaim": {"claimName": source.claim, "readOnly": True}}
        local_path = f"{mount}/{source.path}" if source.path else mount
    else:  # oci
        volume = {"image": {"reference": source.reference, "pullPolicy": "IfNotPresent"}}
        local_path = mount

    served = _served_name(plan)
    for target in plan.targets:
        model_env = target.server.get("modelEnv")
        if not model_env:
            raise FunctionError.at(target.obj, target.container_path,
                                   f"the servers table gives no modelEnv for server {target.server_name!r}")
        if source.scheme == "gs":
            target.template.set_annotation(GCSFUSE_ANNOTATION, "true")
        add_volume(target.template, {"name": VOLUME, **volume})
        add_mount(target.container, {"name": VOLUME, "mountPath": mount, "readOnly": True})
        set_env(target.container, model_env, local_path)
        set_env(target.container, "SERVED_MODEL_NAME", served)
        if source.scheme in ("hf", "pvc"):
            set_env(target.container, "HF_HUB_OFFLINE", "1")
        _set_context(target.container, target, spec, plan)
        if target.template.role != "worker":  # workers of a group serve no API
            add_flags(target.container, model_flags(target, plan.model_row))
    return local_path


def model_flags(target: ServerTarget, model_row: Optional[dict]) -> list:
    """The flags the model's family needs on this server (servers table `modelFlags`:
    reasoning and tool-call parsers, expert parallelism)."""
    family = (model_row or {}).get("family")
    return list((target.server.get("modelFlags") or {}).get(family) or []) if family else []


def _kserve_storage(ctx: Context, plan: Plan, spec: dict) -> None:
    """KServe downloads storageUri into /mnt/models itself (its storage initializer);
    for hf:// it reads HF_TOKEN from the Secrets of the predictor's ServiceAccount."""
    target = plan.targets[0]
    obj, model = target.obj, target.obj.get("spec", "predictor", "model")
    if not isinstance(model, dict):
        raise FunctionError.at(obj, "spec.predictor.model", "KServe loads storageUri into the predictor's model; "
                               "this InferenceService has no spec.predictor.model")
    uri, account = _kserve_download(ctx, plan, spec)
    model["storageUri"] = uri
    if account:
        obj.set(account, "spec", "predictor", "serviceAccountName")
    _set_context(model, target, spec, plan)
    add_flags(model, model_flags(target, plan.model_row))  # KServe appends them to the runtime's args
    ctx.info(f"InferenceService/{obj.name}: KServe loads {uri} into /mnt/models", obj)


def _kserve_download(ctx: Context, plan: Plan, spec: dict) -> tuple[str, Optional[str]]:
    """What KServe's storage initializer downloads (the uri, with the revision), and for hf://
    the ServiceAccount whose Secrets hold the token it reads."""
    obj, source = plan.targets[0].obj, plan.source
    if "storage" in spec:
        raise FunctionError.at(None, "spec.storage", f"{obj.kind}/{obj.name}: KServe downloads into its own "
                               "volume; spec.storage applies to workloads that mount a claim")
    uri = source.uri + (f":{spec['revision']}" if spec.get("revision") else "")
    if source.scheme != "hf":
        return uri, None
    account = f"{obj.name}-model-storage"
    secret = (spec.get("hfTokenSecret") or {}).get("name", "hf-token")
    ctx.add({"apiVersion": "v1", "kind": "ServiceAccount",
             "metadata": _metadata(obj, account, _labels(plan, "model-storage", server_label=False)),
             "secrets": [{"name": secret}]})
    return uri, account


def _set_context(container: dict, target: ServerTarget, spec: dict, plan: Plan) -> None:
    """The context length: spec.contextLength, else the entry's own, else the models table's."""
    context_env = target.server.get("contextLengthEnv")
    if context_env and spec.get("contextLength"):
        set_env(container, context_env, str(spec["contextLength"]))
    elif context_env and plan.model_row and get_env(container, context_env) is None:
        set_env(container, context_env, str(plan.model_row["maxModelLen"]))


def _kserve_llm_storage(ctx: Context, plan: Plan, spec: dict) -> None:
    """An LLMInferenceService names its model (spec.model: uri, and the name vLLM serves it
    as); KServe's storage initializer downloads the uri into /mnt/models of every pod, reading
    hf:// credentials from the Secrets of the pods' ServiceAccount, as for an InferenceService."""
    obj = plan.targets[0].obj
    uri, account = _kserve_download(ctx, plan, spec)
    model = obj.get("spec", "model", default=None)
    if not isinstance(model, dict):
        model = {}
        obj.set(model, "spec", "model")
    model["uri"] = uri
    model["name"] = _served_name(plan)
    for target in plan.targets:
        if account:
            target.template.spec["serviceAccountName"] = account
        _set_context(target.container, target, spec, plan)
    ctx.info(f"LLMInferenceService/{obj.name}: KServe loads {uri} into /mnt/models, served as {model['name']}", obj)


def _claim_name(plan: Plan) -> str:
    return f"{plan.base_name}-weights"


def _labels(plan: Plan, component: str, server_label: bool) -> dict:
    """The workload's app.kubernetes.io/* and serving-catalog.dev/* labels, for generated objects."""
    target = plan.targets[0]
    labels: dict = {}
    for source in (target.template.labels, target.obj.labels):
        labels.update({k: v for k, v in source.items() if k.startswith(COPIED_LABEL_PREFIXES)})
    if not server_label:
        labels.pop(tables.SERVER_LABEL, None)
    labels["app.kubernetes.io/component"] = component
    labels[PREREQUISITE_LABEL] = PREREQUISITE
    return labels


def _metadata(obj: KubeObject, name: str, labels: dict, annotations: Optional[dict] = None) -> dict:
    meta: dict = {"name": name}
    if obj.namespace:
        meta["namespace"] = obj.namespace
    meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    return meta


def _check_access_mode(ctx: Context, obj: KubeObject, mode: str) -> None:
    """Warn about access modes that work only in some clusters or some layouts."""
    if mode == "ReadOnlyMany":
        ctx.warning("accessMode ReadOnlyMany: the download Job writes the claim, and many storage drivers attach "
                    "a ReadOnlyMany volume read-only; use it only with a class that allows one writer first",
                    None, "spec.storage.accessMode", current=mode)
        return
    pods = obj.get("spec", "replicas", default=1)
    if obj.kind == "LeaderWorkerSet":
        pods = (pods or 1) * obj.get("spec", "leaderWorkerTemplate", "size", default=1)
    if mode == "ReadWriteOnce" and isinstance(pods, int) and pods > 1:
        ctx.warning(f"accessMode ReadWriteOnce: the {pods} pods of {obj.kind}/{obj.name} can only share the "
                    f"claim on one node; use ReadWriteMany to spread them", None, "spec.storage.accessMode",
                    current=mode)


def _generate(ctx: Context, plan: Plan, spec: dict) -> tuple[str, str]:
    """The claim the weights live on and the Job that downloads them into it."""
    obj, target, source = plan.targets[0].obj, plan.targets[0], plan.source
    storage = spec.get("storage") or {}
    size = storage.get("size")
    if size is None:
        if plan.model_row is None:
            raise FunctionError.at(None, "spec.storage.size", f"no model row to size the volume for {source.uri}: "
                                   f"set spec.storage.size or spec.model")
        factor = (target.server.get("modelBuild") or {}).get("diskFactor", 1)
        size = f"{tables.weights_gib(plan.model_row) * factor}Gi"
    claim, mode = _claim_name(plan), storage.get("accessMode", "ReadWriteMany")
    _check_access_mode(ctx, obj, mode)
    claim_spec: dict = {"accessModes": [mode],
                        "resources": {"requests": {"storage": size}}}
    if storage.get("storageClassName"):
        claim_spec["storageClassName"] = storage["storageClassName"]
    ctx.add({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
             "metadata": _metadata(obj, claim, _labels(plan, "model-weights", server_label=True)),
             "spec": claim_spec})

    secret = spec.get("hfTokenSecret") or {}
    hf_token = {"name": secret.get("name", "hf-token"), "key": secret.get("key", HF_TOKEN_KEY)}
    build = target.server.get("modelBuild")
    weights = {"name": VOLUME, "persistentVolumeClaim": {"claimName": claim}}
    if build:
        section = model_build.model_section(build, plan.model_row, plan.model_name, target.server_name)
        # Mounted where the server mounts it: a build may write these paths into its output.
        pod = model_build.pod(target, build, plan.model_row, section, source.repo,
                              f"{spec['mountPath']}/{source.repo}", spec.get("revision"), hf_token, weights,
                              spec["mountPath"], ctx.facts)
        job, component = f"{plan.base_name}-build", "model-build"
    else:
        env, mounts, volumes = hf_token_file(hf_token)
        containers = [_download_container(target, "download", [source.repo, *_download_args(source, spec.get("revision"))],
                                          env, mounts)]
        # Each hf:// adapter beside the model, in a container of the same Job.
        containers += [_download_container(target, f"download-{i}", lora.download_args(a, JOB_MOUNT), env, mounts)
                       for i, a in enumerate(plan.adapters) if a.source.scheme == "hf"]
        pod = {"restartPolicy": "OnFailure", "containers": containers, "volumes": [weights, *volumes]}
        job, component = f"{plan.base_name}-download", "model-download"
    ctx.add({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": _metadata(obj, job, _labels(plan, component, server_label=False),
                              pod_security.checkov_annotations(target.server)),
        "spec": {
            "backoffLimit": 4,
            "template": {
                # The prerequisite label and the catalog's pod label only: the server's labels
                # would put this pod behind the server's Service and under the other functions' edits.
                "metadata": {"labels": {PREREQUISITE_LABEL: PREREQUISITE, **pod_security.POD_LABELS}},
                "spec": pod_security.restrict(pod, target.server),
            },
        },
    })
    return claim, job


def _download_args(source: Source, revision: Optional[str]) -> list[str]:
    """The model's download arguments after its repository: where, and without Meta's original/ weights."""
    args = ["--local-dir", f"{JOB_MOUNT}/{source.repo}", "--exclude", "original/*"]
    return args + (["--revision", revision] if revision else [])


def _download_container(target: ServerTarget, name: str, args: list[str],
                        token_env: list[dict], token_mounts: list[dict]) -> dict:
    return {
        "name": name,
        # The server image ships huggingface_hub; pulling it now warms the node. Its CLI is
        # `hf` from huggingface_hub 0.34 on, `huggingface-cli` before (same arguments).
        "image": target.server["image"],
        "command": ["sh", "-c", 'if command -v hf >/dev/null; then exec hf download "$@"; '
                                'else exec huggingface-cli download "$@"; fi', "download"],
        "args": args,
        "env": [*token_env, {"name": "HF_HOME", "value": "/tmp/hf-home"}],
        "resources": {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "8Gi"}},
        "volumeMounts": [{"name": VOLUME, "mountPath": JOB_MOUNT}, *token_mounts],
    }


FUNCTION = Function(
    kind="ModelSource",
    summary="load model weights from hf:// (PVC + download Job), gs://, pvc:// or oci:// and point the server at them",
    spec_schema=SPEC_SCHEMA,
    example=EXAMPLE,
    transform=transform,
)
