"""The installed package: one namespace, imports that run one way, bundled files that nothing in
the working directory shadows."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import tasdsim

ROOT = Path(__file__).resolve().parents[1]
# package -> the tasdsim packages it may import (besides itself and the leaf tasdsim.common)
ALLOWED = {"traces": set(), "components": {"traces"}, "simulator": {"traces", "components"}}


def _imports(path: Path) -> set[str]:
    """Every module a file imports, inside functions too."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_imports_run_one_way():
    wrong = []
    for package, allowed in ALLOWED.items():
        for file in sorted((ROOT / package).rglob("*.py")):
            for name in _imports(file):
                parts = name.split(".")
                if parts[0] in ("simulator", "components", "traces", "configs", "common"):
                    wrong.append(f"{file.relative_to(ROOT)}: top-level import {name}")
                elif parts[0] == "tasdsim" and len(parts) > 1 and parts[1] in ALLOWED:
                    if parts[1] != package and parts[1] not in allowed:
                        wrong.append(f"{file.relative_to(ROOT)}: imports {name}")
    assert not wrong, wrong


def test_common_is_a_leaf():
    assert not [n for n in _imports(ROOT / "common.py") if n.startswith("tasdsim")]


def test_version():
    out = subprocess.run([sys.executable, "-m", "tasdsim.simulator.cli", "--version"], capture_output=True,
                         text=True, check=True).stdout
    assert out == f"tasdsim {tasdsim.__version__}\n"
    assert tasdsim.__version__.count(".") == 2


def test_folders_in_the_working_directory_shadow_nothing(tmp_path):
    """A user's configs/hw/vegeta-m4.yaml (other values), traces/ and simulator/ change nothing."""
    (tmp_path / "configs" / "hw").mkdir(parents=True)
    (tmp_path / "configs" / "hw" / "vegeta-m4.yaml").write_text("name: other\npe_array: {rows: 2}\n")
    for name in ("traces", "simulator", "components"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("raise ImportError('shadowed')\n")
    code = ("from tasdsim.simulator.config import load_hw; hw = load_hw('vegeta-m4'); "
            "print(hw.name, hw.pe_array.rows)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env,
                         check=True).stdout
    assert out == "vegeta-m4 32\n"


def test_the_wheel_holds_tasdsim_alone(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True)
    import zipfile

    (wheel,) = tmp_path.glob("tasdsim-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"tasdsim", f"tasdsim-{tasdsim.__version__}.dist-info"}
    assert {n.split("/")[1] for n in names if n.startswith("tasdsim/") and n.count("/") > 1} == {
        "simulator", "components", "traces", "configs"}
    assert "tasdsim/configs/hw/vegeta-m4.yaml" in names and "tasdsim/common.py" in names
    # Every module and bundled file of the four folders is in the wheel (an editable install hides a
    # subpackage missing from pyproject's package list).
    shipped = {str(f.relative_to(ROOT)) for folder in ("simulator", "components", "traces", "configs")
               for f in (ROOT / folder).rglob("*") if f.is_file() and f.suffix in (".py", ".yaml", ".csv", ".txt")
               and "__pycache__" not in f.parts}
    missing = sorted(f for f in shipped if f"tasdsim/{f}" not in names)
    assert not missing, missing
