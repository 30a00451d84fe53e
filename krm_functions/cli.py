"""Command line of the function image: run a function, or print help."""

from __future__ import annotations

from typing import Optional

from .krmfn import runner
from .registry import REGISTRY


def main(argv: Optional[list[str]] = None) -> int:
    return runner.main(REGISTRY, argv, prog="krm-fn")
