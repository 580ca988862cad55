"""tasdsim: a cycle-accurate discrete-event simulator of N:M structured-sparse DNN accelerators
with TASD (tensor approximation via structured decomposition).

Subpackages, importing one way: `tasdsim.traces` (front-end) <- `tasdsim.components` (hardware
units) <- `tasdsim.simulator` (wiring, runs, reports, CLI); `tasdsim.common` is the leaf they all
use; `tasdsim.configs` holds the bundled YAML files.
"""

__version__ = "0.2.0"
