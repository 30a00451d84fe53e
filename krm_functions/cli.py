"""Command line of the function image: run a function, print help, or generate."""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from . import API_VERSION
from .krmfn import FunctionError, Result, runner, yamlio
from .krmfn.kubeobject import LOCAL_ANNOTATIONS
from .registry import REGISTRY


LOCAL_CONFIG = LOCAL_ANNOTATIONS[0]


def generate(argv: list[str]) -> int:
    """print the manifests a ModelService makes, from --modelservice and --baseconfig files.

    What the llm-d operator's dry run showed, complete: the same output as the
    function gives inside kustomize."""
    parser = argparse.ArgumentParser(prog="krm-fn generate", description=generate.__doc__)
    parser.add_argument("--modelservice", required=True, help="the ModelService function config")
    parser.add_argument("--baseconfig", required=True, help="the BaseConfig ConfigMap (YAML)")
    args = parser.parse_args(argv)
    try:
        config = runner.load_config_file(args.modelservice, "--modelservice")
        if config.get("kind") != "ModelService":
            raise FunctionError(Result(f"--modelservice {args.modelservice}: kind is {config.get('kind')!r}, "
                                       "expected ModelService"))
        try:
            with open(args.baseconfig, "rb") as handle:
                base = handle.read()
        except OSError as err:
            raise FunctionError(Result(f"--baseconfig {args.baseconfig}: {err.strerror}")) from None
    except FunctionError as err:
        runner.report(err.results, sys.stderr)
        return 1
    # As an entry renders it: the ModelService as an intent among the objects, one Render call.
    intent = {**config, "metadata": {**(config.get("metadata") or {}),
                                     "annotations": {**((config.get("metadata") or {}).get("annotations") or {}),
                                                     LOCAL_CONFIG: "true"}}}
    items = base + b"\n---\n" + yamlio.dump(intent).encode()
    render = {"apiVersion": API_VERSION, "kind": "Render", "metadata": {"name": "render"}, "spec": {}}
    output, results, ok = runner.run(REGISTRY, items, render)
    # Like kustomize: local-config objects (the BaseConfig) are input, not output.
    docs = [d for d in yamlio.load_all(output)
            if ((d.get("metadata") or {}).get("annotations") or {}).get(LOCAL_CONFIG) != "true"]
    sys.stdout.write(yamlio.dump_all(docs) if docs else "")
    runner.report(results, sys.stderr)
    return 0 if ok else 1


def main(argv: Optional[list[str]] = None) -> int:
    return runner.main(REGISTRY, argv, prog="krm-fn", extra_commands={"generate": generate})
