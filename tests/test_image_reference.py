"""The function image reference lives in one place (krm_functions/IMAGE), and
every function config in the tree names exactly it: never :latest, never stale."""

import re

from krm_functions.krmfn import yamlio

from .conftest import ROOT

IMAGE = (ROOT / "krm_functions" / "IMAGE").read_text().strip()
SKIP = (".venv", "build", ".git", "node_modules")


def _function_configs():
    for path in ROOT.rglob("*.yaml"):
        if any(part in SKIP for part in path.relative_to(ROOT).parts):
            continue
        text = path.read_text()
        if "config.kubernetes.io/function" not in text:
            continue
        for doc in yamlio.load_all(text):
            spec = ((doc.get("metadata") or {}).get("annotations") or {}).get("config.kubernetes.io/function")
            if spec:
                yield path, yamlio.load(spec)


def test_image_reference_is_pinned():
    assert re.fullmatch(r"[a-z0-9./-]+:[0-9]+\.[0-9]+\.[0-9]+", IMAGE), IMAGE


def test_every_function_config_names_the_one_image():
    found = list(_function_configs())
    assert found, "no function configs found"
    wrong = [f"{p.relative_to(ROOT)}: {fn.get('container', {}).get('image')}"
             for p, fn in found if fn.get("container", {}).get("image") != IMAGE]
    assert not wrong, f"function configs not naming {IMAGE}:\n" + "\n".join(wrong)
