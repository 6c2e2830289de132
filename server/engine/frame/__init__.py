"""The device side of a frame: the talker's step and the code predictor's frame over static
buffers (step, device_batch, kv), per-row sampling and its counter-based random numbers, the
runaway guards, and the graphs that capture and replay the frame per bucket. Nothing here
imports the host side above it (tests/test_layers.py)."""
