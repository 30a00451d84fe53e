"""Finding the server workloads of a catalog entry, and editing their containers.

Shared by the functions: a pod template is a target when its workload is not a
batch Job and its pods carry the server label (or the config names the target);
the server container is found by name, never by position.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from . import tables
from .krmfn import Context, FunctionError, KubeObject, PodTemplate

BATCH_KINDS = ("Job", "CronJob")
# The server container of KServe's LLMInferenceService templates (kserve-config-llm-template).
KSERVE_LLM_CONTAINER = "main"
# llm-d's role of a pod (decode, prefill), on the pods ModelService generates.
LLM_D_ROLE_LABEL = "llm-d.ai/role"

# Schema fragment shared by every function that edits the server workload.
TARGET_SCHEMA = {
    "workload": {
        "type": "object", "additionalProperties": False,
        "description": "Which workload to change; default: every workload whose pods carry "
                       f"the {tables.SERVER_LABEL} label.",
        "properties": {"kind": {"type": "string"}, "name": {"type": "string"},
                       "matchLabels": {"type": "object", "additionalProperties": {"type": "string"},
                                       "description": "Only workloads whose pod templates carry these labels."}},
    },
    "container": {"type": "string", "description": "Server container name; default: the servers table's containerName."},
    "server": {"type": "string", "description": "Server row; default: the pods' server label."},
}


@dataclass
class ServerTarget:
    obj: KubeObject
    template: PodTemplate
    container: dict
    container_path: str
    server_name: str
    server: dict
    model_name: Optional[str]

    @property
    def is_kserve(self) -> bool:
        return self.obj.group == "serving.kserve.io"


def selects(selector: dict, labels: dict) -> bool:
    """A Service's (non-empty) selector matches these pod labels."""
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def target_key(target: ServerTarget) -> tuple:
    """A server pod template's key in a Render call's facts."""
    return (target.obj.kind, target.obj.namespace or "", target.obj.name, target.template.role or "")


def targets(ctx: Context, spec: dict) -> list[ServerTarget]:
    """Every server container the config selects; an error when there is none."""
    wanted = spec.get("workload") or {}
    found: list[ServerTarget] = []
    for obj in ctx.items:
        if obj.kind in BATCH_KINDS or wanted.get("kind", obj.kind) != obj.kind or wanted.get("name", obj.name) != obj.name:
            continue
        for tmpl in obj.pod_templates():
            if any(tmpl.labels.get(k) != v for k, v in (wanted.get("matchLabels") or {}).items()):
                continue
            server_name = spec.get("server") or tmpl.labels.get(tables.SERVER_LABEL) or obj.labels.get(tables.SERVER_LABEL)
            if not server_name and not wanted:
                continue
            if not server_name:
                raise FunctionError.at(obj, f"{tmpl.labels_path}", f"no {tables.SERVER_LABEL} label; set spec.server")
            server = tables.server(server_name, obj, f"{tmpl.labels_path}.{tables.SERVER_LABEL}")
            names = ([spec["container"]] if spec.get("container") else
                     [KSERVE_LLM_CONTAINER] if obj.kind == "LLMInferenceService" else
                     [server["containerName"], "kserve-container"])
            container = next((c for c in (tmpl.container(n) for n in names) if c is not None), None)
            if container is None:
                raise FunctionError.at(obj, f"{tmpl.spec_path}.containers",
                                       f"server container {names[0]!r} not found (containers: {', '.join(tmpl.container_names()) or 'none'})")
            model_name = tmpl.labels.get(tables.MODEL_LABEL) or obj.labels.get(tables.MODEL_LABEL)
            found.append(ServerTarget(obj, tmpl, container, tmpl.container_path(container.get("name", "kserve-container")),
                                      server_name, server, model_name))
    if not found:
        what = f"{wanted.get('kind', 'workload')}/{wanted['name']}" if wanted.get("name") else "workload"
        raise FunctionError.at(None, "spec.workload",
                               f"no server {what} found: expected a Deployment, StatefulSet, LeaderWorkerSet, "
                               f"InferenceService, LLMInferenceService or ServingRuntime whose pods carry "
                               f"{tables.SERVER_LABEL}")
    return found



# container editing ----------------------------------------------------------

def set_arg(container: dict, flag: str, value: Any) -> None:
    """Set `--flag=value`, replacing `--flag=x` or `--flag x` wherever it stands."""
    text = str(value)
    for key in ("command", "args"):
        args = container.get(key) or []
        for i, arg in enumerate(args):
            if arg == flag:  # `--flag value`, or a dangling `--flag` that takes this value
                args[i + 1:i + 2] = [text]
                return
            if isinstance(arg, str) and arg.startswith(flag + "="):
                args[i] = f"{flag}={text}"
                return
    container.setdefault("args", []).append(f"{flag}={text}")



def set_env(container: dict, name: str, value: Optional[str] = None, value_from: Optional[dict] = None) -> None:
    env = container.setdefault("env", [])
    entry: dict = {"name": name}
    if value_from is not None:
        entry["valueFrom"] = value_from
    else:
        entry["value"] = str(value)
    for i, e in enumerate(env):
        if e.get("name") == name:
            env[i] = entry
            return
    env.append(entry)


def add_flags(container: dict, flags: list) -> None:
    """Add each flag (`--flag=value` or a bare `--switch`) the command line does not set
    already: what an entry sets itself wins."""
    for flag in flags:
        name, _, value = str(flag).partition("=")
        if value:
            if get_arg(container, name) is None:
                set_arg(container, name, value)
        elif not any(name in (container.get(key) or []) for key in ("command", "args")):
            container.setdefault("args", []).append(name)


def get_env(container: dict, name: str) -> Optional[str]:
    for e in container.get("env") or []:
        if e.get("name") == name:
            return e.get("value")
    return None


def get_arg(container: dict, flag: str) -> Optional[str]:
    """The value of `--flag=value` or `--flag value` (set_arg's forms), or None."""
    for key in ("command", "args"):
        args = container.get(key) or []
        for i, arg in enumerate(args):
            if arg == flag and i + 1 < len(args):
                return str(args[i + 1])
            if isinstance(arg, str) and arg.startswith(flag + "="):
                return arg.split("=", 1)[1]
    return None


def get_param(container: dict, setting: dict) -> Optional[str]:
    """A server parameter as set_param wrote it (an argument or an env var), or None."""
    if "arg" in setting:
        return get_arg(container, setting["arg"])
    return get_env(container, setting["env"]) if "env" in setting else None


def set_param(container: dict, key: str, value: Any, setting: dict) -> None:
    """Apply a server parameter the way the servers table says: an argument
    (`--flag=v` or maxengine-style `key=v`) or an environment variable."""
    if "arg" in setting:
        set_arg(container, setting["arg"], value)
    elif "env" in setting:
        set_env(container, setting["env"], str(value))
    else:  # the table's schema test keeps this unreachable
        raise ValueError(f"setting for {key} names neither arg nor env")


def upsert_named(items: list, entry: dict, key: str = "name") -> None:
    """Replace the list entry of the same name, or append."""
    for i, old in enumerate(items):
        if isinstance(old, dict) and old.get(key) == entry.get(key):
            items[i] = entry
            return
    items.append(entry)


# The memory-backed /dev/shm volume the Accelerator function gives GPU/TPU pods.
SHM_VOLUME = "dshm"


def add_toleration(spec: dict, toleration: dict) -> None:
    tolerations = spec.setdefault("tolerations", [])
    if toleration not in tolerations:
        tolerations.append(dict(toleration))


def add_volume(tmpl: PodTemplate, volume: dict) -> None:
    upsert_named(tmpl.list_field("volumes"), volume)


def add_mount(container: dict, mount: dict) -> None:
    mounts = container.setdefault("volumeMounts", [])
    for i, m in enumerate(mounts):
        if m.get("name") == mount["name"] or m.get("mountPath") == mount["mountPath"]:
            mounts[i] = mount
            return
    mounts.append(mount)


def apply_spot(tmpl: PodTemplate, provider: dict, name: str) -> None:
    """The provider's spot node selector and tolerations (accelerators table, `spot`)."""
    if "spot" not in provider:
        raise FunctionError.at(None, "spec.provider", f"provider {name} has no spot capacity in the accelerators table")
    tmpl.map_field("nodeSelector").update(provider["spot"]["nodeSelector"])
    for toleration in provider["spot"].get("tolerations", []):
        add_toleration(tmpl.spec, toleration)


HF_TOKEN_DIR = "/var/run/secrets/huggingface"


def hf_token_file(hf_token: dict) -> tuple[list[dict], list[dict], list[dict]]:
    """(env, mounts, volumes): the Hugging Face token as a file, not an env var
    (huggingface_hub reads HF_TOKEN_PATH: huggingface_hub/constants.py, 1.33.0; checkov
    CKV_K8S_35)."""
    volume = {"name": "hf-token", "secret": {"secretName": hf_token["name"], "defaultMode": 0o440,
                                              "items": [{"key": hf_token["key"], "path": "token"}]}}
    return ([{"name": "HF_TOKEN_PATH", "value": f"{HF_TOKEN_DIR}/token"}],
            [{"name": "hf-token", "mountPath": HF_TOKEN_DIR, "readOnly": True}], [volume])
