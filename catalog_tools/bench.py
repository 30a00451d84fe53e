"""`make bench`: speed figures (not tests; nothing here fails on a number).

1. A krmfn transformer vs kustomize's builtin transformers doing comparable work
   (set labels + an image tag) on 100, 1,000 and 10,000 Deployments.
   Target: krmfn <= 1.5x the builtin at 1,000 and 10,000.
2. Cost of one function call: in-process, exec (a subprocess), docker run.
3. Render time of every catalog entry (target: median <= 1.0 s).
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from catalog_tools.render import ROOT, counting_docker, engine
from krm_functions.krmfn import Context, Function, Registry, run, yamlio

SIZES = (100, 1_000, 10_000)
LABELS = {"app.kubernetes.io/part-of": "serving-catalog", "team": "inference"}
IMAGE_NAME, NEW_TAG = "vllm/vllm-openai", "v0.31.0"


def deployments(n: int) -> list[dict]:
    return [{"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": f"server-{i}", "labels": {"app": f"server-{i}"}},
             "spec": {"replicas": 1, "selector": {"matchLabels": {"app": f"server-{i}"}},
                      "template": {"metadata": {"labels": {"app": f"server-{i}"}},
                                   "spec": {"containers": [{"name": "vllm", "image": f"{IMAGE_NAME}:v0.10.0",
                                                            "args": ["--port=8000"],
                                                            "resources": {"requests": {"cpu": "4", "memory": "16Gi"}}}]}}}}
            for i in range(n)]


def _set_labels_and_image(ctx: Context, spec: dict) -> None:
    """What kustomize's `labels:` (with selectors) + `images:` do, through the SDK."""
    for obj in ctx.items:
        for key, value in spec["labels"].items():
            obj.set_label(key, value)
        obj.setdefault_map("spec", "selector", "matchLabels").update(spec["labels"])
        for tmpl in obj.pod_templates():
            tmpl.meta.setdefault("labels", {}).update(spec["labels"])
            for c in tmpl.containers():
                if c.get("image", "").split(":")[0] == spec["image"]:
                    c["image"] = f"{spec['image']}:{spec['tag']}"


BENCH = Registry("bench.serving-catalog.dev/v1")
BENCH.register(Function("SetLabelsAndImage", "bench transformer", {"type": "object"}, {}, _set_labels_and_image))
CONFIG = {"apiVersion": "bench.serving-catalog.dev/v1", "kind": "SetLabelsAndImage", "metadata": {"name": "b"},
          "spec": {"labels": LABELS, "image": IMAGE_NAME, "tag": NEW_TAG}}


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def krmfn_vs_builtin() -> None:
    print("1. krmfn transformer vs kustomize builtin (labels: + images:), best of runs, seconds")
    print(f"   {'objects':>8} {'krmfn':>8} {'builtin':>8} {'ratio':>6}  target <= 1.5x at 1,000 and 10,000")
    for n in SIZES:
        items = deployments(n)
        resource_list = yamlio.dump({"apiVersion": "config.kubernetes.io/v1", "kind": "ResourceList",
                                     "items": items, "functionConfig": CONFIG})
        repeat = 5 if n <= 1000 else 1  # kustomize takes minutes at 10,000

        def sdk() -> None:
            _, _, ok = run(BENCH, resource_list)
            assert ok

        t_sdk = best_of(repeat, sdk)
        with tempfile.TemporaryDirectory() as tmp:
            Path(tmp, "deployments.yaml").write_text(yamlio.dump_all(items))
            Path(tmp, "kustomization.yaml").write_text(yamlio.dump({
                "resources": ["deployments.yaml"],
                "labels": [{"pairs": LABELS, "includeSelectors": True, "includeTemplates": True}],
                "images": [{"name": IMAGE_NAME, "newTag": NEW_TAG}]}))
            cmd = engine() + [tmp]
            t_builtin = best_of(repeat, lambda: subprocess.run(cmd, check=True, capture_output=True))
        verdict = "" if n < 1000 else ("  ok" if t_sdk <= 1.5 * t_builtin else "  MISSED")
        print(f"   {n:>8,} {t_sdk:>8.3f} {t_builtin:>8.3f} {t_sdk / t_builtin:>5.2f}x{verdict}")


def call_overhead() -> None:
    print("\n2. one Accelerator call on the test Deployment: in-process, exec, docker run (median of 7), seconds")
    from krm_functions.registry import REGISTRY

    case = ROOT / "tests" / "kustomize" / "accelerator-gpu"
    config = yamlio.load((case / "accelerator.yaml").read_text())
    rl = yamlio.dump({"apiVersion": "config.kubernetes.io/v1", "kind": "ResourceList",
                      "items": yamlio.load_all((case / "deployment.yaml").read_text()), "functionConfig": config})
    from catalog_tools.image import reference

    image = reference()
    exe = Path(sys.executable).parent / "krm-fn"
    ways = {"in-process": lambda: run(REGISTRY, rl),
            "exec": lambda: subprocess.run([str(exe)], input=rl, capture_output=True, text=True, check=True)}
    if shutil.which("docker") and subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode == 0:
        ways["docker run"] = lambda: subprocess.run(
            ["docker", "run", "--rm", "-i", "--network", "none", "--user", "nobody", image],
            input=rl, capture_output=True, text=True, check=True)
    else:
        print("   (docker run: skipped, no engine or image; run `make setup`)")
    for name, fn in ways.items():
        samples = [best_of(1, fn) for _ in range(7)]
        print(f"   {name:<11} {statistics.median(samples):.3f}")


def entry_render_times() -> None:
    """Each entry with its one Render call, against plain kustomize on the same tree without
    the call (the entry's intents and bases, no function: what kustomize alone costs), in the
    same run; and the function containers each entry starts (a logging `docker` on PATH)."""
    import os
    import tempfile
    from catalog_tools.catalog import entries

    print("\n3. render time per catalog entry (best of 3), seconds: with its Render call, plain kustomize "
          "without it, the ratio, container runs; target median ratio <= 3")
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        env, log = counting_docker(Path(tmp))
        for entry in entries():
            path = ROOT / entry.path
            # kustomize takes no absolute roots: the plain copy lives in the tree, under build/.
            plain = ROOT / "build" / "bench-plain"
            plain.mkdir(parents=True, exist_ok=True)
            kustomization = yamlio.load((path / "kustomization.yaml").read_text())
            kustomization.pop("transformers", None)
            for key in ("resources", "components"):
                kustomization[key] = [os.path.relpath(path / ref, plain) for ref in kustomization.get(key) or []]
            (plain / "kustomization.yaml").write_text(yamlio.dump(kustomization))
            log.write_text("")
            with_fn = best_of(3, lambda: subprocess.run(engine() + ["--enable-alpha-plugins", str(path)], env=env,
                                                        check=True, capture_output=True))
            runs = len(log.read_text().split()) // 3
            without = best_of(3, lambda: subprocess.run(engine() + ["--load-restrictor", "LoadRestrictionsNone", str(plain)],
                                                        check=True, capture_output=True))
            ratios.append(with_fn / without)
            print(f"   {with_fn:6.2f} {without:6.2f} {with_fn / without:5.1f}x  {runs} run(s)  {entry.path}")
    if ratios:
        median = statistics.median(ratios)
        print(f"   median ratio {median:.1f}x{'  ok' if median <= 3 else '  MISSED'}")


def main() -> None:
    krmfn_vs_builtin()
    call_overhead()
    entry_render_times()


if __name__ == "__main__":
    main()
