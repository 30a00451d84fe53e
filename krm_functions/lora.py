"""LoRA adapters served beside a base model (ModelSource `adapters`, and an llm-d
ModelService's `modelArtifacts.adapters`, which it passes on).

An adapter is a name of the models table row's `adapters` (its uri and rank come from
there) or a {name, uri} of its own: hf:// adapters are downloaded into the weights claim
by the same Job as the model, oci:// adapters are image volumes. The server takes them the
way its servers-table `lora` row says (vLLM: --enable-lora, --max-loras, --max-lora-rank,
--lora-modules NAME=PATH ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .krmfn import FunctionError
from .sources import Source, parse_uri
from .workloads import ServerTarget, add_flags, add_mount, add_volume

ADAPTER_MOUNT = "/adapters"  # oci:// adapters: /adapters/<name>

SCHEMA = {
    "type": "array", "minItems": 1,
    "description": "LoRA adapters served beside the base model, each under its name: a name of the models "
                   "table row's `adapters`, or {name, uri} with uri hf://org/repo (downloaded into the weights "
                   "claim with the model) or oci://image:tag (an image volume); rank: the adapter's LoRA rank "
                   "(default: the row's, else the server's default maximum). The servers table's `lora` row "
                   "says how the server takes them.",
    "items": {
        "type": "object", "additionalProperties": False, "required": ["name"],
        "properties": {
            "name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$",
                     "description": "The model name clients send for this adapter."},
            "uri": {"type": "string", "minLength": 1},
            "rank": {"type": "integer", "minimum": 1},
        },
    },
}


@dataclass(frozen=True)
class Adapter:
    name: str
    source: Source
    rank: Optional[int]


def resolve(items: list, model_row: Optional[dict], model_name: Optional[str]) -> list[Adapter]:
    """The adapters of spec.adapters, their uri and rank from the models table where not given."""
    known = (model_row or {}).get("adapters") or {}
    found, names = [], set()
    for i, item in enumerate(items):
        path = f"spec.adapters[{i}]"
        if item["name"] in names:
            raise FunctionError.at(None, f"{path}.name", f"adapter {item['name']!r} is listed twice")
        names.add(item["name"])
        row = known.get(item["name"], {})
        uri = item.get("uri") or row.get("uri")
        if not uri:
            listed = ", ".join(known) or "none"
            raise FunctionError.at(None, f"{path}.uri", f"no uri, and {item['name']!r} is not an adapter of the "
                                   f"models table's {model_name or 'model'} (its adapters: {listed})")
        try:
            source = parse_uri(uri)
        except FunctionError as err:
            raise FunctionError.at(None, f"{path}.uri", err.results[0].message, current=uri) from None
        if source.scheme not in ("hf", "oci"):
            raise FunctionError.at(None, f"{path}.uri", f"an adapter comes from hf:// or oci://, not "
                                   f"{source.scheme}://", current=uri)
        found.append(Adapter(item["name"], source, item.get("rank") or row.get("rank")))
    return found


def serve(target: ServerTarget, adapters: list[Adapter], claim_mount: Optional[str]) -> None:
    """Mount the oci:// adapters and give the server its LoRA flags; hf:// adapters are read
    from the weights claim, mounted at claim_mount (None: the model is not on a claim)."""
    lora = target.server.get("lora")
    if lora is None:
        raise FunctionError.at(None, "spec.adapters", f"server {target.server_name} serves no LoRA adapters here "
                               "(its servers table row has no `lora`)")
    paths = []
    for adapter in adapters:
        if adapter.source.scheme == "hf":
            if claim_mount is None:
                raise FunctionError.at(None, "spec.adapters", f"hf:// adapter {adapter.name!r} is downloaded into "
                                       "the weights claim: load the model from hf:// too, or the adapter from oci://")
            paths.append(f"{adapter.name}={claim_mount}/{adapter.source.repo}")
        else:
            volume = f"adapter-{adapter.name.lower().replace('.', '-').replace('_', '-')}"[:63]
            path = f"{ADAPTER_MOUNT}/{adapter.name}"
            add_volume(target.template, {"name": volume, "image": {"reference": adapter.source.reference,
                                                                   "pullPolicy": "IfNotPresent"}})
            add_mount(target.container, {"name": volume, "mountPath": path, "readOnly": True})
            paths.append(f"{adapter.name}={path}")
    flags = [lora["enable"], f"{lora['maxLoras']}={len(adapters)}"]
    ranks = [a.rank for a in adapters if a.rank]
    if ranks:
        allowed = [r for r in lora["ranks"] if r >= max(ranks)]
        if not allowed:
            raise FunctionError.at(None, "spec.adapters", f"rank {max(ranks)} is above the largest LoRA rank "
                                   f"{target.server_name} serves ({lora['ranks'][-1]})")
        flags.append(f"{lora['maxRank']}={allowed[0]}")
    add_flags(target.container, flags)
    args = target.container.setdefault("args", [])
    if lora["modules"] not in args:
        args += [lora["modules"], *paths]


def download_args(adapter: Adapter, job_mount: str) -> list[str]:
    """The download container's arguments for an hf:// adapter (the model's own form)."""
    return [adapter.source.repo, "--local-dir", f"{job_mount}/{adapter.source.repo}"]
