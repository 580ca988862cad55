"""The bundled YAML data: hardware, DRAM, energy, workloads, sweeps, validation suites."""
