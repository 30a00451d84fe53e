"""The data tables (krm_functions/data/*.yaml): accelerators, servers, models.

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
        return yamlio.load(handle.read())


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


def model_for_hf_id(hf_id: str) -> Optional[str]:
    """The models table row whose hfId this is, or None."""
    return next((name for name, row in table("models").items() if row["hfId"] == hf_id), None)


def topology_chips(topology: str) -> int:
    return math.prod(int(d) for d in topology.split("x"))


def weights_gib(model_row: dict) -> int:
    """Disk for a model's weights: parameters × bytes per parameter, plus 20% and
    10 GiB of headroom for tokenizer files and partial downloads."""
    raw = model_row["parametersB"] * 1e9 * DTYPE_BYTES[model_row["dtype"]] / 2**30
    return int(math.ceil((raw * 1.2 + 10) / 10.0) * 10)


DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "fp8": 1, "int8": 1, "int4": 0.5}
