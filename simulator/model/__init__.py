"""The analytical model's parts that stand alone: tiling and buffer plan, the DRAM term, energy."""
