"""Memory fit: do a model's weights and one sequence at the configured context fit
the accelerator memory a server is given?

Per device: the server's budget (its memory fraction of the device, the servers
table's `memory` row) must hold the weights (parameters x checkpoint bytes over
tensor x pipeline parallelism; a mixture of experts counts every expert), the
server's runtime overhead, and the KV cache of one sequence at the context length
(the models table's attention shape: GQA, MLA, sliding-window layers; the KV
cache dtype). What is left after weights and overhead is the KV cache; its size
in tokens is the headroom entry READMEs and catalog.md show.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

from . import tables
from .krmfn import FunctionError
from .workloads import get_arg, get_env

GIB = 2**30

# KV cache element sizes by --kv-cache-dtype value; "auto" follows the model's dtype.
KV_DTYPE_BYTES = {"fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1, "fp8_inc": 1, "int8": 1,
                  "bfloat16": 2, "float16": 2, "half": 2, "float32": 4}


@dataclass(frozen=True)
class Fit:
    devices: int           # devices holding one copy of the model (tensor x pipeline)
    device_gib: float      # memory of one device
    fraction: float        # of the device (or of what is free after weights, for `of: free`)
    budget_gib: float      # what the server may use on one device
    weights_gib: float     # per device
    overhead_gib: float    # per device, inside the budget
    kv_gib: float          # left for the KV cache, per device
    context: int           # tokens of the configured context
    sequence_gib: float    # KV cache of one sequence at the context, per device
    tokens: int            # KV cache capacity in tokens

    @property
    def fits(self) -> bool:
        return self.kv_gib >= self.sequence_gib

    def summary(self) -> str:
        """Headroom in a few words, e.g. `fits: 6.1 GiB KV ≈ 48k tokens`."""
        verdict = "fits" if self.fits else "does not fit"
        return f"{verdict}: {self.kv_gib:.1f} GiB KV ≈ {_k(self.tokens)} tokens"

    def problem(self, device: str) -> str:
        """One line with the numbers, for a build error."""
        return (f"the model does not fit at context {self.context}: {self.devices} x {device} "
                f"({self.device_gib:g} GiB each), per device {self.budget_gib:.1f} GiB usable "
                f"(fraction {self.fraction:g}) - weights {self.weights_gib:.1f} GiB - overhead "
                f"{self.overhead_gib:.1f} GiB leaves {max(self.kv_gib, 0):.1f} GiB for the KV cache "
                f"≈ {_k(self.tokens)} tokens, and one {self.context}-token sequence needs "
                f"{self.sequence_gib:.1f} GiB: use more devices or a shorter context")


def _k(tokens: int) -> str:
    return f"{tokens / 1000:.1f}k" if tokens >= 1000 else str(max(tokens, 0))


def weights_gib(model_row: dict, devices: int) -> float:
    return tables.checkpoint_bytes(model_row) / devices / GIB


def kv_bytes(model_row: dict, tokens: int, tensor: int, pipeline: int, element_bytes: float) -> float:
    """KV cache bytes of one sequence of `tokens` on one device."""
    layers = math.ceil(model_row["layers"] / pipeline)
    attention = model_row.get("attention") or {}
    if attention.get("kind") == "mla":
        # One compressed latent plus the rotary key per token and layer, the same on every
        # tensor-parallel rank (it is not split by heads).
        return layers * (attention["kvLoraRank"] + attention["qkRopeHeadDim"]) * element_bytes * tokens
    # Keys and values per KV head; heads split across tensor-parallel ranks, and a rank
    # keeps at least one (replicated when there are fewer KV heads than ranks).
    per_layer_token = 2 * max(1, model_row["kvHeads"] // tensor) * model_row["headDim"] * element_bytes
    window = attention.get("slidingWindow")
    if window:
        # Every `globalEvery`-th layer attends to the whole context; the others to the window.
        global_layers = layers // attention["globalEvery"]
        local_layers = layers - global_layers
        return per_layer_token * (global_layers * tokens + local_layers * min(tokens, window))
    return per_layer_token * layers * tokens


# SGLang's default chunked prefill size and decode CUDA-graph batch size by device memory
# (GiB below which a row applies; batch size for tp < 4, tp >= 4), and the number of
# prefill CUDA-graph batch sizes each chunk size captures.
_SGLANG_SIZES = ((20, 2048, 8, 8), (35, 4096, 48, 160), (60, 4096, 32, 160), (160, 8192, 256, 512),
                 (math.inf, 16384, 512, 512))
_SGLANG_PREFILL_GRAPHS = {2048: 42, 4096: 50, 8192: 58, 16384: 74}


def sglang_auto_fraction(device_gib: float, tensor: int, pipeline: int, model_row: dict) -> float:
    """SGLang 0.5.21's --mem-fraction-static when unset: device memory less a reserve for
    activations and CUDA graphs (sglang/srt/arg_groups/memory_hook.py,
    handle_gpu_memory_settings; checked against it by tests/test_conformance.py), lowered for
    models with a vision tower."""
    mib = device_gib * 1024
    _, chunk, small_bs, large_bs = next(row for row in _SGLANG_SIZES if device_gib < row[0])
    batch = small_bs if tensor < 4 else large_bs
    reserved = (512 + max(chunk, 2048) * 1.5 + tensor * pipeline / 8 * 1024 + batch * 2
                + _SGLANG_PREFILL_GRAPHS[chunk] * 8)
    if device_gib > 60:
        reserved = max(reserved, 10240)
    value = round((mib - reserved) / mib, 3)
    vision = model_row.get("vision")
    if vision:  # a ViT's activations: the larger the tower, the smaller the static share
        size = vision["layers"] * vision["hiddenSize"] ** 2 / (24 * 1024**2)
        value *= 0.95 * min(max(1 - 0.1 * (size - 1), 0.8), 1.05)
    return value


AUTO_FRACTIONS = {"sglang-auto": sglang_auto_fraction}


def fraction(server_row: dict, value: Optional[str], device_gib: float, tensor: int, pipeline: int,
             model_row: dict) -> float:
    """The server's memory fraction: the rendered setting, or the table's default
    (a number, or the name of the server's own rule)."""
    if value is not None:
        return float(value)
    setting = server_row["memory"]["fraction"]
    if "setting" in setting:  # a setting of the server's model build
        return float(server_row["modelBuild"]["settings"][setting["setting"]])
    default = setting["default"]
    if isinstance(default, str):
        return AUTO_FRACTIONS[default](device_gib, tensor, pipeline, model_row)
    return float(default)


def fit(model_row: dict, device_gib: float, server_row: dict, tensor: int, pipeline: int, context: int,
        fraction_value: Optional[str] = None, kv_dtype: Optional[str] = None) -> Fit:
    memory = server_row["memory"]
    devices = tensor * pipeline
    frac = fraction(server_row, fraction_value, device_gib, tensor, pipeline, model_row)
    weights = weights_gib(model_row, devices)
    overhead = float(memory.get("overheadGiB", 0))
    if memory["fraction"].get("of") == "free":  # the KV cache takes a fraction of what is left
        budget = device_gib
        kv = (device_gib - weights - overhead) * frac
    else:
        budget = device_gib * frac
        kv = budget - weights - overhead
    if kv_dtype and kv_dtype != "auto":
        element = KV_DTYPE_BYTES[kv_dtype]
    else:  # the activations' dtype: 16-bit for 16-bit and quantized (fp8, int4) checkpoints alike
        element = 4 if model_row["dtype"] == "float32" else 2
    sequence = kv_bytes(model_row, context, tensor, pipeline, element) / GIB
    per_token = sequence / context if context else 0
    tokens = int(kv / per_token) if per_token > 0 and kv > 0 else 0
    return Fit(devices, device_gib, frac, budget, weights, overhead, kv, context, sequence, tokens)


def check(server_row: dict, model_row: dict, accel_row: dict, container: dict, tensor: int, pipeline: int,
          context_env: Optional[str], obj: Any, where: str) -> Fit:
    """The fit of a rendered server container (`where`: its field path): its context, memory
    fraction and KV cache dtype as its env and args set them, else the tables' defaults."""
    memory = server_row["memory"]
    context = get_env(container, context_env) if context_env else None
    if context is not None and not (context.isdigit() and int(context) > 0):
        raise FunctionError.at(obj, f"{where}.env.{context_env}", f"context length {context[:200]!r} is not "
                               "a positive whole number", current=context)
    frac = get_arg(container, memory["fraction"]["arg"]) if "arg" in memory["fraction"] else None
    if frac is not None and not _is_fraction(frac):
        raise FunctionError.at(obj, f"{where}.args", f"{memory['fraction']['arg']}={frac[:200]} is not a number "
                               "between 0 and 1", current=frac)
    kv_dtype = get_arg(container, memory["kvCacheDtype"]) if "kvCacheDtype" in memory else None
    if kv_dtype not in (None, "auto") and kv_dtype not in KV_DTYPE_BYTES:
        raise FunctionError.at(obj, f"{where}.args", f"{memory['kvCacheDtype']}={kv_dtype[:200]}: unknown KV "
                               f"cache dtype (known: auto, {', '.join(KV_DTYPE_BYTES)})", current=kv_dtype)
    return fit(model_row, float(accel_row["memoryGiB"]), server_row, tensor, pipeline,
               int(context) if context is not None else model_row["maxModelLen"], frac, kv_dtype)


def _is_fraction(text: str) -> bool:
    try:
        return 0 < float(text) <= 1
    except ValueError:
        return False
