"""The engine's own exception tree; the HTTP layer maps each to a status in server/errors.py.

EngineError
├── QueueFullError        the queue already holds MAX_QUEUE_DEPTH jobs
├── ModelLoadError        a model slot failed to load (bad id, missing files, no hub)
├── JobTimeoutError       a job ran past REQUEST_TIMEOUT and was cancelled
├── JobCancelledError     a job was cancelled (client gone, timeout, shutdown)
├── EngineStoppedError    the engine is shutting down and takes no new work
├── EngineStalledError    the inference thread is stuck (ENGINE_STALL_TIMEOUT)
├── SynthesisError        the model raised while generating
│   └── InvalidSynthesisInput  the model refused the input (unknown speaker or language)
├── QuantizeUnsupported   QUANTIZE asks for what the device cannot run (slots/quantize.py)
├── AlignerUnavailable    ALIGNER_MODEL_ID is set without the aligner package (slots/aligner.py)
├── AlignmentError        a segment could not be aligned (slots/aligner.py)
├── CrossDeviceError      the simulated CUDA device saw an operation mix devices (device/simulated.py)
└── CaptureViolation      the simulated device saw a host sync while capturing (device/simulated.py)

The last five also derive from RuntimeError, as they did before they joined the tree.
"""

from __future__ import annotations


class EngineError(Exception):
    """Base of every error raised by the engine."""


class QueueFullError(EngineError):
    def __init__(self, depth: int) -> None:
        super().__init__(f"server busy: {depth} requests already queued or running; retry shortly")
        self.depth = depth


class ModelLoadError(EngineError):
    def __init__(self, slot: str, model_id: str, reason: str) -> None:
        super().__init__(f"model {model_id!r} ({slot}) could not be loaded: {reason}")
        self.slot = slot
        self.model_id = model_id
        self.reason = reason


class JobTimeoutError(EngineError):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"request did not finish within {seconds:g} s and was cancelled")
        self.seconds = seconds


class JobCancelledError(EngineError):
    """Raised inside the inference thread to abandon a job between frames."""


class EngineStoppedError(EngineError):
    def __init__(self) -> None:
        super().__init__("server is shutting down")


class EngineStalledError(EngineError):
    def __init__(self, reason: str) -> None:
        super().__init__(f"server unavailable: {reason}; it will be restarted")
        self.reason = reason


class SynthesisError(EngineError):
    """The model failed while generating audio."""


class InvalidSynthesisInput(SynthesisError):
    """The model rejected an argument (speaker, language) that validation let through."""
