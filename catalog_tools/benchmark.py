"""Render the benchmark of a catalog entry: the entry with components/benchmark/<tool> and
one Render call, as an overlay would; prints the benchmark's objects (its ConfigMap, claim
and Job), to apply beside the running entry.

    python -m catalog_tools.benchmark ENTRY [--url http://GATEWAY] [--tool inference-perf]

`make benchmark ENTRY=... [URL=...]` calls this. The overlay is written under
build/benchmark/ (kustomize reads directories, not stdin).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path
from typing import Optional

from krm_functions import tables
from krm_functions.krmfn import yamlio

from .render import ROOT, RenderError, render_text

COMPONENT_LABEL = ("app.kubernetes.io/component", "benchmark")


class BenchmarkError(Exception):
    pass


def overlay(entry: Path, tool: str, url: Optional[str]) -> Path:
    """The overlay directory: the entry, the tool's Component, an optional URL patch, Render."""
    entry = entry.resolve()
    if not (entry / "kustomization.yaml").is_file():
        raise BenchmarkError(f"{entry}: not a catalog entry (no kustomization.yaml)")
    component = ROOT / "components" / "benchmark" / tool
    if not component.is_dir():
        known = ", ".join(sorted(p.name for p in (ROOT / "components" / "benchmark").iterdir()))
        raise BenchmarkError(f"no benchmark Component {tool!r} (known: {known})")
    key = hashlib.sha256(f"{entry}\0{tool}\0{url}".encode()).hexdigest()[:12]
    folder = ROOT / "build" / "benchmark" / key
    folder.mkdir(parents=True, exist_ok=True)
    kustomization: dict = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [os.path.relpath(entry, folder)],
        "components": [os.path.relpath(component, folder)],
        "transformers": [os.path.relpath(ROOT / "components" / "render", folder)],
    }
    if url:
        kustomization["patches"] = [{"target": {"kind": "Benchmark"},
                                     "patch": yamlio.dump([{"op": "add", "path": "/spec/url", "value": url}])}]
    (folder / "kustomization.yaml").write_text(yamlio.dump(kustomization))
    return folder


def render_benchmark(entry: Path, tool: str = "inference-perf", url: Optional[str] = None) -> list[dict]:
    """The benchmark's objects for an entry (RenderError with the function's message if it cannot)."""
    docs = yamlio.load_all(render_text(overlay(entry, tool, url)))
    key, value = COMPONENT_LABEL
    return [d for d in docs if ((d.get("metadata") or {}).get("labels") or {}).get(key) == value]


def status(server: str, crd: str, tool: str = "inference-perf") -> tuple[str, str]:
    """How an entry is benchmarked: (`ready` | `url` | `none`, text for catalog.md). An llm-d
    entry's and an LLMInferenceService's clients reach it through a Gateway (an HTTPRoute),
    whose address is the cluster's."""
    row = tables.benchmark(tool)
    if server not in row["clients"]:
        return "none", f"no: {tool} has no {server} client"
    if crd in ("modelservice", "llminferenceservice"):
        return "url", "`make benchmark URL=http://GATEWAY`"
    return "ready", "`make benchmark`"


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="make benchmark", description=__doc__.splitlines()[0])
    parser.add_argument("entry", type=Path)
    parser.add_argument("--url", help="base URL to benchmark (the Gateway's address, for entries behind one)")
    parser.add_argument("--tool", default="inference-perf")
    args = parser.parse_args(argv)
    try:
        docs = render_benchmark(args.entry, args.tool, args.url)
    except BenchmarkError as err:
        print(f"benchmark: {err}", file=sys.stderr)
        return 1
    except RenderError as err:  # name the entry, not the overlay written for it
        print(f"benchmark: {args.entry}:\n{err.stderr.strip()}", file=sys.stderr)
        return 1
    sys.stdout.write(yamlio.dump_all(docs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
