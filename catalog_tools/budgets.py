"""Time budgets: can an entry's weights be downloaded and loaded in the time it is given?

At the provider's documented throughput for the weights volume (accelerators table,
`weightsThroughputMiBps`), the model-load Job writes the weights once and every start
of a replica reads them once; the startup probe must allow that read plus the
server's warm-up, and `make deploy` must wait for the download.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from krm_functions import memory, tables

from .catalog import Entry

# After the weights are read: CUDA graph capture, compilation and warm-up (an allowance).
WARMUP_SECONDS = 600
# `make deploy` (catalog_tools/deploy.py) waits this long for a model-load Job unless
# MODEL_LOAD_TIMEOUT or --timeout says otherwise: 754 GiB of Llama 3.1 405B at Filestore
# Basic HDD's 100 MiB/s take 2.1 h.
DEPLOY_WAIT_HOURS = 4


@dataclass(frozen=True)
class Budget:
    weights_gib: float
    download_seconds: int
    load_seconds: int

    @property
    def startup_seconds(self) -> int:
        """What a startup probe must allow."""
        return self.load_seconds + WARMUP_SECONDS


def budget(entry: Entry, claim_gib: Optional[float] = None) -> Optional[Budget]:
    """None where the provider documents no throughput, the model has no row, or the weights
    do not come through the provider's volume (KServe downloads into each pod).
    `claim_gib`: the weights claim's requested size, where throughput grows with it."""
    throughput = tables.provider(entry.provider).get("weightsThroughputMiBps")
    if not throughput or entry.model not in tables.table("models") or entry.crd == "inferenceservice":
        return None
    weights = memory.weights_gib(tables.model(entry.model), 1)
    read, write = throughput_mibps(throughput, claim_gib if claim_gib is not None else weights)
    return Budget(weights, int(weights * 1024 / write), int(weights * 1024 / read))


def throughput_mibps(row: dict, claim_gib: float) -> tuple[float, float]:
    """(read, write) MiB/s of a weights volume of `claim_gib` (accelerators table row)."""
    provisioned = max(claim_gib, row.get("minimumGiB", 0))
    per_gib = row.get("perGiB") or {}
    return (row["read"] + per_gib.get("read", 0) * provisioned,
            row["write"] + per_gib.get("write", 0) * provisioned)


def deploy_wait_seconds() -> int:
    return DEPLOY_WAIT_HOURS * 3600


def startup_allowance(probe: dict) -> int:
    """Seconds a startup probe allows before the kubelet restarts the container."""
    return (probe.get("initialDelaySeconds", 0)
            + probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3))
