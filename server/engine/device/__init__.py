"""The engine's one seam to a device's runtime (runtime.py) and the simulated CUDA device
that proves the CUDA path on a CPU (simulated.py)."""
