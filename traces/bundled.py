"""Finding bundled data files: configs/<folder>/<name>.yaml, installed or in a source checkout."""
from __future__ import annotations

import importlib.util
from pathlib import Path


def bundled_files(folder: str) -> dict[str, Path]:
    """`configs/<folder>/*.yaml` by name (file stem), from the `configs` namespace package.

    Walks the package's search path instead of `importlib.resources.files("configs")`, which fails
    on Python 3.11 for namespace packages in editable installs (python/importlib_resources#311).
    """
    spec = importlib.util.find_spec("configs")
    found: dict[str, Path] = {}
    for root in spec.submodule_search_locations if spec else ():
        directory = Path(root) / folder
        if directory.is_dir():
            for file in sorted(directory.glob("*.yaml")):
                found.setdefault(file.stem, file)
    return found
