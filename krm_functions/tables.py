"""The data tables (krm_functions/data/*.yaml): accelerators, servers, models, benchmarks.

Facts live there, once; functions, the catalog generator and the tests read
them through this module. Lookups raise FunctionError naming what is known.
"""

from __future__ import annotations

import math
import os
from functools import lru_cache
from typing import Any, Optional

from .krmfn import yamlio
from .krmfn.results import FunctionError

# os.path, not pathlib: every function call starts a fresh interpreter, and pathlib
# costs ~10 ms to import.
DATA_DIR = os.path.join(os.path.dirname(__file__), "data")

# Labels every catalog workload's pods carry; functions use them to find the row.
SERVER_LABEL = "serving-catalog.dev/server"
MODEL_LABEL = "serving-catalog.dev/model"


@lru_cache(maxsize=None)
def table(name: str) -> Any:
    with open(os.path.join(DATA_DIR, f"{name}.yaml"), "rb") as handle:
        data = yamlio.load(handle.read())
    if name == "servers":  # a build of another server's release: that row's facts, then its own
        data = {key: {**data[row["variantOf"]], **row} if "variantOf" in row else row for key, row in data.items()}
    return data


def _lookup(rows: dict, key: Any, what: str, obj: Any = None, path: str = "") -> dict:
    if key in rows:
        return rows[key]
    known = ", ".join(str(k) for k in rows)
    # The tables travel inside the function image: a row added since it was built is unknown there.
    raise FunctionError.at(obj, path, f"unknown {what} {key!r} (known: {known}; a row added to "
                           f"krm_functions/data/ reaches the function image with `make images`)")


def provider(name: str, obj: Any = None, path: str = "spec.provider") -> dict:
    return _lookup(table("accelerators")["providers"], name, "provider", obj, path)


def accelerator(provider_name: str, name: str, obj: Any = None, path: str = "spec.accelerator") -> dict:
    rows = {a["name"]: a for a in table("accelerators")["accelerators"] if a["provider"] == provider_name}
    return _lookup(rows, name, f"{provider_name} accelerator", obj, path)


def accelerators(provider_name: Optional[str] = None) -> list[dict]:
    return [a for a in table("accelerators")["accelerators"] if provider_name in (None, a["provider"])]


def server(name: str, obj: Any = None, path: str = "") -> dict:
    return _lookup(table("servers"), name, "server", obj, path)


def model(name: str, obj: Any = None, path: str = "") -> dict:
    return _lookup(table("models"), name, "model", obj, path)


def benchmark(name: str, obj: Any = None, path: str = "spec.tool") -> dict:
    return _lookup(table("benchmarks"), name, "benchmark tool", obj, path)


def model_for_hf_id(hf_id: str) -> Optional[str]:
    """The models table row whose hfId this is, or None."""
    return next((name for name, row in table("models").items() if row["hfId"] == hf_id), None)


def topology_chips(topology: str) -> int:
    return math.prod(int(d) for d in topology.split("x"))


def checkpoint_bytes(model_row: dict) -> float:
    """Bytes of the published weights: the checkpoint's own size where the row gives it
    (mixed precision, e.g. MXFP4 experts beside 16-bit attention), else parameters × bytes
    per parameter of its dtype."""
    if "checkpointGB" in model_row:
        return model_row["checkpointGB"] * 1e9
    return model_row["parametersB"] * 1e9 * DTYPE_BYTES[model_row["dtype"]]


def weights_gib(model_row: dict) -> int:
    """Disk for a model's weights: the checkpoint, plus 20% and 10 GiB of headroom for
    tokenizer files and partial downloads."""
    raw = checkpoint_bytes(model_row) / 2**30
    return int(math.ceil((raw * 1.2 + 10) / 10.0) * 10)


# mxfp4: 4-bit values with one 8-bit scale per 32 (OCP Microscaling), 4.25 bits.
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "fp8": 1, "int8": 1, "int4": 0.5, "mxfp4": 0.53125}
