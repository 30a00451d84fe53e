"""Add a model to the catalog by copying an existing model's overlays.

    python -m catalog_tools.new_model SERVER_DIR FROM_MODEL TO_MODEL
    e.g. serving-catalog/core/deployment/vllm gemma-3-27b-it gemma-7b-it

TO_MODEL must already be a row of krm_functions/data/models.yaml (the functions
read its Hugging Face id, size and context length from there). Names, labels and
the model reference are rewritten; the new entries' READMEs and catalog.md are
regenerated. Sizing (CPU/memory, accelerator Component) is copied: review it. When
the new model does not fit the copied accelerator at its context, the build fails
with the memory-fit numbers and nothing is written.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

from krm_functions import tables
from krm_functions.krmfn import FunctionError

from . import catalog
from .entry_readme import readme
from .render import ROOT, RenderError


class NewModelError(Exception):
    pass


def dns_name(model: str) -> str:
    """Model names may hold dots (llama3.1-405b-it); object names like Services may not."""
    return model.replace(".", "-")


# Where the model's name becomes part of object names (nameSuffix, the instance label that
# matches them): there it takes its DNS form, whatever the form of the name copied from.
_NAME_LINE = re.compile(r"^(\s*(?:nameSuffix|app\.kubernetes\.io/instance):.*)$", re.M)


def _rewriter(old: str, new: str):
    # Whole names only: `gemma-2b` must not match inside `gemma-2b-it` or `my-gemma-2b.x`.
    pairs = [(old, new)] + ([(dns_name(old), dns_name(new))] if dns_name(old) != old else [])
    patterns = [(re.compile(rf"(?<![A-Za-z0-9.]){re.escape(a)}(?![A-Za-z0-9.]|-[A-Za-z0-9])"), b) for a, b in pairs]
    to_dns = [(pattern, dns_name(replacement)) for pattern, replacement in patterns]

    def rewrite(text: str) -> str:
        def name_line(match: re.Match) -> str:
            line = match.group(1)
            for pattern, replacement in to_dns:
                line = pattern.sub(replacement, line)
            return line
        text = _NAME_LINE.sub(name_line, text)
        for pattern, replacement in patterns:
            text = pattern.sub(replacement, text)
        return text
    return rewrite


def new_model(server_dir: Path, old: str, new: str, root: Path = ROOT) -> list[Path]:
    """Copy server_dir/old to server_dir/new; return the new entries' directories."""
    server_dir = (root / server_dir).resolve() if not Path(server_dir).is_absolute() else Path(server_dir)
    source, target = server_dir / old, server_dir / new
    try:
        tables.model(new)
    except FunctionError:
        raise NewModelError(f"{new}: not in krm_functions/data/models.yaml; add its row first "
                            f"(hfId, config, parametersB, layers, kvHeads, headDim, dtype, maxModelLen)") from None
    if not (source / "base" / "kustomization.yaml").exists():
        raise NewModelError(f"{source.relative_to(root)}: no model base to copy (expected base/kustomization.yaml)")
    if target.exists():
        raise NewModelError(f"{target.relative_to(root)}: already exists")
    rewrite = _rewriter(old, new)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("README.md"))
    for path in sorted(target.rglob("*")):
        if path.is_file():
            path.write_text(rewrite(path.read_text()))
    try:
        created = [e for e in catalog.entries(root) if (root / e.path).is_relative_to(target)]
        readmes = {root / entry.path / "README.md": readme(entry, root) for entry in created}
        markdown = catalog.markdown(root)
    except RenderError as err:
        shutil.rmtree(target)  # nothing half-written
        raise NewModelError(f"the copied entry does not render, nothing was added:\n{err.stderr.strip()}") from None
    for path, text in readmes.items():
        path.write_text(text)
    (root / "catalog.md").write_text(markdown)
    return [root / e.path for e in created]


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        for path in new_model(Path(argv[0]), argv[1], argv[2]):
            print(f"created {path.relative_to(ROOT)}")
    except (NewModelError, RenderError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print("catalog.md regenerated; review CPU/memory requests and the accelerator Component")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
