"""A server's modelBuild: the model-load Job also builds what the server loads.

The servers table names a Jinja2 script in data/model-builds/, where its output
goes below the model's directory, and what the Job needs (image, env, memory,
disk); this module renders the script and assembles the Job's pod. When the
build must run on the server's own accelerators (a TensorRT engine is specific
to the GPU model and the tensor-parallel size), the Job gets the server pod's
scheduling and devices.
"""

from __future__ import annotations

import math
import os
import shlex
from typing import Optional

from .. import tables
from ..krmfn import FunctionError, PodTemplate
from ..workloads import SHM_VOLUME, ServerTarget, get_param, hf_token_file, target_key

BUILDS_DIR = os.path.join(tables.DATA_DIR, "model-builds")
# Resources the build Job takes from the server container as they are: the devices.
NOT_DEVICES = ("cpu", "memory", "ephemeral-storage", "hugepages-")
# Scheduling the build pod copies from the server pod, so it lands on the same kind of node.
SCHEDULING = ("nodeSelector", "tolerations", "affinity")
# Where Kaggle's CLI reads kaggle.json from (the Secret `kaggle-credentials`).
KAGGLE_DIR = "/kaggle"


class Rejected(Exception):
    """A template refusing its input: (config field, message)."""


def output_path(repo_dir: str, build: dict) -> str:
    """Where the build writes: modelBuild.output below the model's directory."""
    return f"{repo_dir}/{build['output']}"


def server_path(repo_dir: str, build: dict) -> str:
    """What the server reads: modelBuild.serverPath below the output (default: the output)."""
    out = output_path(repo_dir, build)
    return f"{out}/{build['serverPath']}" if build.get("serverPath") else out


def model_section(build: dict, model_row: Optional[dict], model_name: Optional[str], server_name: str) -> dict:
    """The models table section the build reads (modelBuild.modelSection), or {}."""
    name = build.get("modelSection")
    if not name:
        return {}
    if not model_row or name not in model_row:
        raise FunctionError.at(None, "spec.model", f"server {server_name} builds its model from the models "
                               f"table's `{name}` section, and {model_name or 'this model'} has none")
    return model_row[name]


def tensor_parallel(target: ServerTarget, facts: Optional[dict] = None) -> int:
    """The server's tensor-parallel size: what the Accelerator step of this Render call
    computed; else, run alone, as the Accelerator function set it (1 when unset)."""
    known = ((facts or {}).get("accelerators") or {}).get(target_key(target))
    if known:
        return known["tensor"]
    setting = (target.server.get("parallelism") or {}).get("tensor") or {}
    value = get_param(target.container, setting)
    try:
        return int(value) if value is not None else 1
    except ValueError:
        raise FunctionError.at(target.obj, target.container_path, f"tensor-parallel size {value!r} is not a number "
                               "(the build needs it)", current=value) from None


def devices(target: ServerTarget, facts: Optional[dict] = None) -> dict:
    """The accelerator requests of the server container (e.g. nvidia.com/gpu: 2): from this
    Render call's Accelerator step, else, run alone, from the container."""
    known = ((facts or {}).get("accelerators") or {}).get(target_key(target))
    if known and not known["devices"]:
        raise FunctionError.at(target.obj, f"{target.container_path}.resources.claims",
                               f"server {target.server_name} builds its model on the server's accelerators, which "
                               "this entry claims through DRA: use the provider's extended resources for it")
    if known:
        return dict(known["devices"])
    limits = (target.container.get("resources") or {}).get("limits") or {}
    found = {k: v for k, v in limits.items() if not k.startswith(NOT_DEVICES)}
    if not found:
        raise FunctionError.at(target.obj, f"{target.container_path}.resources.limits",
                               f"server {target.server_name} builds its model on the server's accelerators, and "
                               "the server container requests none: apply the Accelerator function before "
                               "ModelSource (list the accelerator Component before the model-load one)")
    return found


def script(build: dict, context: dict) -> str:
    import jinja2  # only entries with a modelBuild pay for the import
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def reject(field: str, message: str) -> None:
        raise Rejected(field, message)

    # The project's own scripts, rendered in the sandbox all the same: templates never run code.
    env = ImmutableSandboxedEnvironment(loader=jinja2.FileSystemLoader(BUILDS_DIR), undefined=jinja2.StrictUndefined,
                                        keep_trailing_newline=True, autoescape=False)
    env.filters["sh"] = lambda value: shlex.quote(str(value))
    env.filters["py"] = repr
    env.globals["reject"] = reject
    try:
        return env.get_template(build["script"]).render(settings=build.get("settings") or {}, **context)
    except Rejected as err:
        field, message = err.args
        raise FunctionError.at(None, f"spec.{field}", message) from None


def memory_gib(build: dict, model_row: dict) -> int:
    """Host memory: the weights times modelBuild.memoryFactor (loading and converting
    hold them several times over), at least 32 GiB, in steps of 16 GiB."""
    weights = tables.checkpoint_bytes(model_row) / 1e9
    return max(32, int(math.ceil(weights * build.get("memoryFactor", 2) / 16.0) * 16))


def kaggle_handle(section: dict) -> Optional[str]:
    """The Kaggle handle when the model section says the weights come from Kaggle."""
    return section.get("kaggle") if section.get("from") == "kaggle" else None


def _credentials(section: dict, hf_token: dict) -> tuple[list[dict], list[dict], list[dict]]:
    """(env, mounts, volumes) for where the weights come from: Kaggle (its API key in
    the Secret kaggle-credentials) or Hugging Face."""
    if kaggle_handle(section):
        return ([{"name": "KAGGLE_CONFIG_DIR", "value": KAGGLE_DIR}],
                [{"name": "kaggle-credentials", "mountPath": KAGGLE_DIR, "readOnly": True}],
                [{"name": "kaggle-credentials", "secret": {"secretName": "kaggle-credentials", "defaultMode": 0o400}}])
    return hf_token_file(hf_token)


def pod(target: ServerTarget, build: dict, model_row: dict, section: dict, repo: str, repo_dir: str,
        revision: Optional[str], hf_token: dict, volume: dict, mount: str, facts: Optional[dict] = None) -> dict:
    """The build Job's pod spec: one container running the rendered script."""
    tmpl: PodTemplate = target.template
    context = {"repo": repo, "revision": revision, "weights_dir": repo_dir, "section": section,
               "output_dir": output_path(repo_dir, build), "server_dir": server_path(repo_dir, build), "tensor_parallel": tensor_parallel(target, facts),
               "max_seq_len": model_row["maxModelLen"]}
    command = ["bash", "-c", script(build, context)]
    memory = f"{memory_gib(build, model_row)}Gi"
    resources: dict = {"requests": {"cpu": "8", "memory": memory}, "limits": {"memory": memory}}
    if build.get("ephemeralStorage"):  # what the script installs or unpacks on the container's disk
        for kind in ("requests", "limits"):
            resources[kind]["ephemeral-storage"] = build["ephemeralStorage"]
    env, mounts, volumes = _credentials(section, hf_token)
    env = [*({"name": k, "value": str(v)} for k, v in (build.get("env") or {}).items()),
           {"name": "HF_HOME", "value": "/tmp/hf-home"}, *env]
    mounts, volumes = [{"name": volume["name"], "mountPath": mount}, *mounts], [volume, *volumes]
    scheduling: dict = {}
    if build.get("onServerAccelerator"):
        for name, count in devices(target, facts).items():
            resources["requests"][name] = resources["limits"][name] = count
        scheduling = {key: tmpl.spec[key] for key in SCHEDULING if tmpl.spec.get(key)}
        # NCCL and the build's MPI workers share tensors through /dev/shm, as the server's do.
        shm = next((v for v in tmpl.spec.get("volumes") or [] if v.get("name") == SHM_VOLUME), None)
        if shm is not None:
            volumes.append(shm)
            mounts.append({"name": SHM_VOLUME, "mountPath": "/dev/shm"})
    return {
        "restartPolicy": "OnFailure",
        **scheduling,
        "containers": [{
            "name": "build",
            "image": build.get("image") or target.server["image"],
            "command": command,
            "env": env,
            "resources": resources,
            "volumeMounts": mounts,
        }],
        "volumes": volumes,
    }
