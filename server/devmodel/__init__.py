"""Small, randomly initialised Qwen3-TTS checkpoints built from the package's own config
classes: a tool for tests, benchmarks and smoke tests on machines without real weights.
Not part of the serving engine."""

from server.devmodel.builder import SPEAKERS, build_dev_checkpoint, main, model_config

__all__ = ["SPEAKERS", "build_dev_checkpoint", "main", "model_config"]
