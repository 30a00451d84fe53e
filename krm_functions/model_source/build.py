"""A server's modelBuild: the model-load Job also builds what the server loads.

The servers table names a Jinja2 script in data/model-builds/ and where its output
goes below the model's directory; this module renders the script and, when the
build must run on the server's own accelerators (a TensorRT engine is specific to
the GPU model and the tensor-parallel size), gives the Job the server pod's
scheduling and devices.
"""

from __future__ import annotations

import math
import os
import shlex
from typing import Optional

from .. import tables
from ..krmfn import FunctionError, PodTemplate
from ..workloads import ServerTarget, get_env

BUILDS_DIR = os.path.join(tables.DATA_DIR, "model-builds")
# Resources the build Job takes from the server container as they are: the devices.
NOT_DEVICES = ("cpu", "memory", "ephemeral-storage", "hugepages-")
# Scheduling the build pod copies from the server pod, so it lands on the same kind of node.
SCHEDULING = ("nodeSelector", "tolerations", "affinity")


def output_path(repo_dir: str, build: dict) -> str:
    return f"{repo_dir}/{build['output']}"


def tensor_parallel(target: ServerTarget) -> int:
    """The server's tensor-parallel size as the Accelerator function set it (1 when unset)."""
    setting = (target.server.get("parallelism") or {}).get("tensor") or {}
    value = get_env(target.container, setting["env"]) if "env" in setting else None
    if value is None and "arg" in setting:
        value = next((str(a).split("=", 1)[1] for a in target.container.get("args") or []
                      if str(a).startswith(setting["arg"] + "=")), None)
    try:
        return int(value) if value is not None else 1
    except ValueError:
        raise FunctionError.at(target.obj, target.container_path, f"tensor-parallel size {value!r} is not a number "
                               "(the build needs it)", current=value) from None


def devices(target: ServerTarget) -> dict:
    """The accelerator requests of the server container (e.g. nvidia.com/gpu: 2)."""
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

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(BUILDS_DIR), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, autoescape=False)
    env.filters["sh"] = lambda value: shlex.quote(str(value))
    env.filters["py"] = repr
    return env.get_template(build["script"]).render(settings=build.get("settings") or {}, **context)


def memory_gib(model_row: dict) -> int:
    """Loading and converting the weights holds them in host memory about twice."""
    weights = model_row["parametersB"] * tables.DTYPE_BYTES[model_row["dtype"]]
    return max(32, int(math.ceil(weights * 2 / 16.0) * 16))


def pod(target: ServerTarget, build: dict, model_row: dict, repo: str, repo_dir: str, revision: Optional[str],
        hf_token: dict, volume: dict, mount: str) -> dict:
    """The build Job's pod spec: one container running the rendered script."""
    tmpl: PodTemplate = target.template
    context = {"repo": repo, "revision": revision, "weights_dir": repo_dir,
               "output_dir": output_path(repo_dir, build), "tensor_parallel": tensor_parallel(target),
               "max_seq_len": model_row["maxModelLen"]}
    memory = f"{memory_gib(model_row)}Gi"
    resources: dict = {"requests": {"cpu": "8", "memory": memory}, "limits": {"memory": memory}}
    mounts = [{"name": volume["name"], "mountPath": mount}]
    volumes, scheduling = [volume], {}
    if build.get("onServerAccelerator"):
        for name, count in devices(target).items():
            resources["requests"][name] = resources["limits"][name] = count
        scheduling = {key: tmpl.spec[key] for key in SCHEDULING if tmpl.spec.get(key)}
        # NCCL and the build's MPI workers share tensors through /dev/shm, as the server's do.
        shm = next((v for v in tmpl.spec.get("volumes") or [] if v.get("name") == "dshm"), None)
        if shm is not None:
            volumes.append(shm)
            mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
    return {
        "restartPolicy": "OnFailure",
        **scheduling,
        "containers": [{
            "name": "build",
            "image": build.get("image") or target.server["image"],
            "command": ["bash", "-c", script(build, context)],
            "env": [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": hf_token}},
                    {"name": "HF_HOME", "value": "/tmp/hf-home"}],
            "resources": resources,
            "securityContext": {"allowPrivilegeEscalation": False},
            "volumeMounts": mounts,
        }],
        "volumes": volumes,
    }
