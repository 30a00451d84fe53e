"""Converting published weights into the MaxText (Orbax) checkpoint JetStream loads.

The upstream converter (the inference-checkpoint image's entrypoint) writes only
to a GCS bucket; the MaxText scripts it calls accept local paths, so this Job runs
them against the weights volume instead. The result is the "unscanned" parameter
checkpoint maxengine reads with load_parameters_path.
"""

from __future__ import annotations

import math
import shlex
from typing import Optional

from .. import tables
from ..krmfn import FunctionError

# While converting, the volume holds the original, scanned and unscanned copies.
DISK_FACTOR = 3
# Where a converted checkpoint lives below the model's directory on the volume.
CHECKPOINT_DIR = "maxtext"
UNSCANNED_ITEMS = "unscanned/0/checkpoints/0/items"


def checkpoint_path(repo_dir: str) -> str:
    return f"{repo_dir}/{CHECKPOINT_DIR}/{UNSCANNED_ITEMS}"


def model_settings(model_row: Optional[dict], model_name: Optional[str], server_name: str) -> dict:
    if not model_row or "maxtext" not in model_row:
        raise FunctionError.at(None, "spec.model", f"server {server_name} loads MaxText checkpoints, and the "
                               f"models table gives no `maxtext` row for {model_name or 'this model'}")
    return model_row["maxtext"]


def _fetch(settings: dict, repo: str, out: str, revision: Optional[str]) -> str:
    if settings["from"] == "kaggle":
        if revision:
            raise FunctionError.at(None, "spec.revision", "the checkpoint comes from Kaggle "
                                   f"({settings['kaggle']}), which pins its own version: drop spec.revision")
        return (f"kaggle models instances versions download {shlex.quote(settings['kaggle'])} "
                f"--untar -p {out}/base")
    # Meta's original weights in the HF repo: the format llama_or_mistral_ckpt.py reads.
    args = f"{repo!r}, allow_patterns=['original/*'], local_dir='{out}/base'"
    if revision:
        args += f", revision={revision!r}"
    return f'python3 -c "from huggingface_hub import snapshot_download; snapshot_download({args})"'


def _convert(settings: dict, out: str) -> str:
    if settings["from"] == "kaggle":
        variation = settings["kaggle"].split("/")[3]  # owner/model/framework/variation/version
        size = variation.split("-")[0]
        return (f"python3 MaxText/convert_gemma_chkpt.py --base_model_path {out}/base/{variation} "
                f"--maxtext_model_path {out}/scanned --model_size {size}")
    return ("python3 -m pip install --no-cache-dir torch --index-url https://download.pytorch.org/whl/cpu && "
            f"python3 MaxText/llama_or_mistral_ckpt.py --base-model-path {out}/base/original "
            f"--maxtext-model-path {out}/scanned --model-size {settings['model']}")


def script(checkpoint: dict, settings: dict, repo_dir: str, repo: str, revision: Optional[str]) -> str:
    out = f"{repo_dir}/{CHECKPOINT_DIR}"
    return "\n".join([
        "set -euo pipefail",
        # A finished conversion is kept: rerunning the Job is cheap and safe.
        f'if [ -e {out}/.complete ]; then echo "already converted: {out}/{UNSCANNED_ITEMS}"; exit 0; fi',
        f"rm -rf {out} && mkdir -p {out}",
        f"git clone --depth 1 --branch {checkpoint['maxtextVersion']} https://github.com/google/maxtext.git /tmp/maxtext",
        "cd /tmp/maxtext && python3 -m pip install --no-cache-dir -r requirements.txt",
        _fetch(settings, repo, out, revision),
        _convert(settings, out),
        ("python3 MaxText/generate_param_only_checkpoint.py MaxText/configs/base.yml force_unroll=true "
         f"model_name={settings['model']} async_checkpointing=false run_name=0 "
         f"load_parameters_path={out}/scanned/0/items base_output_directory={out}/unscanned"),
        # Keep only what maxengine loads.
        f"rm -rf {out}/base {out}/scanned",
        f"touch {out}/.complete",
        f'echo "converted: {out}/{UNSCANNED_ITEMS}"',
    ]) + "\n"


def memory_gib(model_row: dict) -> int:
    """Conversion holds the weights in memory about three times over (load, convert, save)."""
    weights = model_row["parametersB"] * tables.DTYPE_BYTES[model_row["dtype"]]
    return max(32, int(math.ceil(weights * 3 / 16.0) * 16))


def container(checkpoint: dict, settings: dict, model_row: dict, repo_dir: str, repo: str,
              revision: Optional[str], hf_token: dict, mount: str) -> tuple[dict, list[dict]]:
    """The conversion container and the extra volumes it needs."""
    env = [{"name": "JAX_PLATFORMS", "value": "cpu"},  # convert on CPU: no TPU is held for it
           {"name": "HF_HOME", "value": "/tmp/hf-home"}]
    mounts = [{"name": "model-weights", "mountPath": mount}]
    volumes: list[dict] = []
    if settings["from"] == "meta":
        env.append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": hf_token}})
    else:  # kaggle: the only credential is the Kaggle API key
        env.append({"name": "KAGGLE_CONFIG_DIR", "value": "/kaggle"})
        mounts.append({"name": "kaggle-credentials", "mountPath": "/kaggle", "readOnly": True})
        volumes.append({"name": "kaggle-credentials", "secret": {"secretName": "kaggle-credentials",
                                                                  "defaultMode": 0o400}})
    memory = f"{memory_gib(model_row)}Gi"
    return {
        "name": "convert",
        "image": checkpoint["image"],
        "command": ["bash", "-c", script(checkpoint, settings, repo_dir, repo, revision)],
        "env": env,
        # MaxText's requirements and torch are pip-installed into the container's own disk.
        "resources": {"requests": {"cpu": "8", "memory": memory, "ephemeral-storage": "20Gi"},
                      "limits": {"memory": memory, "ephemeral-storage": "20Gi"}},
        "securityContext": {"allowPrivilegeEscalation": False},
        "volumeMounts": mounts,
    }, volumes
