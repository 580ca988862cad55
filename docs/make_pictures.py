"""Make every picture in docs/ from real runs of the installed tasdsim (needs matplotlib):

    python docs/make_pictures.py

- cycles_breakdown.png, utilization.png, roofline.png: ResNet-50 on vegeta-m4, DDR4, TASDER
  choosing each layer's weight series (`tasdsim simulate ... --tasd auto --out DIR`);
- sweep_pareto.png: the bundled paper-resnet50 sweep (four presets, dense and TASD);
- validate_cycles.png: the bundled validation suite (`tasdsim validate --out DIR`).
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent

# (command line after `tasdsim`, {picture the run writes: name in docs/})
RUNS = [
    (["simulate", "--hw", "vegeta-m4", "--workload", "resnet50", "--tasd", "auto", "--out", "run"],
     {"run/cycles_breakdown.png": "cycles_breakdown.png", "run/utilization.png": "utilization.png",
      "run/roofline.png": "roofline.png"}),
    (["sweep", "paper-resnet50", "--out", "sweep", "--no-progress"], {"sweep/sweep_pareto.png": "sweep_pareto.png"}),
    (["validate", "--no-scalesim", "--out", "validate"], {"validate/cycles.png": "validate_cycles.png"}),
]


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="tasdsim-pictures-") as work:
        for argv, pictures in RUNS:
            print("tasdsim " + " ".join(argv), file=sys.stderr)
            subprocess.run([sys.executable, "-m", "tasdsim.simulator.cli", *argv], cwd=work, check=True,
                           stdout=subprocess.DEVNULL)
            for made, name in pictures.items():
                shutil.copyfile(Path(work) / made, DOCS / name)
                print(f"  docs/{name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
