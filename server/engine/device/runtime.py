"""The one seam between the engine and a device's runtime: backend flags, binding a thread,
placing a loaded model, pinned host buffers, events, graph capture and replay, memory
statistics. Three implementations: the CPU (nothing to do), CUDA, and a simulated CUDA
device (server/engine/device/simulated.py) that runs the CUDA path on the CPU for the tests
and benchmarks and records what it is asked to do.

The engine never calls `torch.cuda` itself; it asks `runtime_for(device)`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import torch

Replay = Callable[[], None]


class Capturer(Protocol):
    """Captures functions over static buffers into graphs sharing one memory pool."""

    def __call__(self, name: str, run: Replay) -> Replay:
        """Capture `run` (after warm-up runs); returns what replays it."""

    def release(self) -> None: ...


class Event(Protocol):
    def wait(self) -> None:
        """Block the host until the work before the event has finished (a host sync)."""


class DeviceRuntime(Protocol):
    name: str
    # Whether copies and kernels run asynchronously to the host (so a read must wait for an
    # event), and whether the frame's functions are captured as graphs.
    asynchronous: bool

    def configure(self) -> None:
        """Process-wide backend flags, set once before a model loads."""

    def bound(self) -> contextlib.AbstractContextManager[None]:
        """The context a thread that runs the engine's device work runs in."""

    def load_map(self, device: str) -> str:
        """The `device_map` a checkpoint is loaded with."""

    def place(self, module: torch.nn.Module) -> None:
        """After loading: make sure every parameter and buffer is on the device."""

    def pinned(self, *shape: int, dtype: torch.dtype) -> torch.Tensor:
        """A zeroed host buffer that copies to and from the device can run asynchronously."""

    def upload(self, tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
        """A small host tensor on the device, copied asynchronously (through pinned memory
        that is not reused before the copy has run)."""

    def record(self) -> Event | None:
        """An event after the work queued so far (None where work is synchronous)."""

    def capturer(self) -> Capturer: ...

    def synchronize(self) -> None: ...

    def memory(self) -> dict[str, Any] | None:
        """Device name and memory in MiB, or None without a device."""

    def reserved_bytes(self) -> int: ...

    def empty_cache(self) -> None: ...


class CpuRuntime:
    name = "cpu"
    asynchronous = False

    def configure(self) -> None:
        return None

    def bound(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def load_map(self, device: str) -> str:
        return device

    def place(self, module: torch.nn.Module) -> None:
        return None

    def pinned(self, *shape: int, dtype: torch.dtype) -> torch.Tensor:
        return torch.zeros(*shape, dtype=dtype)

    def upload(self, tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
        return tensor

    def record(self) -> Event | None:
        return None

    def capturer(self) -> Capturer:
        raise RuntimeError("graphs are captured on CUDA only")

    def synchronize(self) -> None:
        return None

    def memory(self) -> dict[str, Any] | None:
        return None

    def reserved_bytes(self) -> int:
        return 0

    def empty_cache(self) -> None:
        return None


# Eager runs on a side stream before a capture, so lazy initialisation (cuBLAS handles and
# workspaces, kernel selection) happens outside the graph.
CAPTURE_WARMUP_RUNS = 2


class CudaCapturer:
    """Captures each function as a CUDA graph in one shared pool."""

    def __init__(self) -> None:
        self.pool = torch.cuda.graph_pool_handle()
        self.side = torch.cuda.Stream()  # type: ignore[no-untyped-call]
        self.graphs: list[torch.cuda.CUDAGraph] = []

    def __call__(self, name: str, run: Replay) -> Replay:
        self.side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.side):
            for _ in range(CAPTURE_WARMUP_RUNS):
                run()
        torch.cuda.current_stream().wait_stream(self.side)
        graph = torch.cuda.CUDAGraph()
        # Thread-local: another thread touching CUDA meanwhile (/health reads memory
        # statistics) must not invalidate the capture, as the global mode lets it.
        with torch.cuda.graph(graph, pool=self.pool, capture_error_mode="thread_local"):
            run()
        self.graphs.append(graph)
        return graph.replay

    def release(self) -> None:
        self.graphs.clear()


class _CudaEvent:
    def __init__(self) -> None:
        self._event = torch.cuda.Event()  # type: ignore[no-untyped-call]
        self._event.record()

    def wait(self) -> None:
        self._event.synchronize()


class CudaRuntime(CpuRuntime):
    """CUDA: binding a thread, the load map and placement are the CPU runtime's (the
    `device_map` puts the model on the GPU); the rest is the CUDA runtime's own."""

    name = "cuda"
    asynchronous = True

    def configure(self) -> None:
        # cuDNN's autotuner would tune the codec's convolutions again for every new chunk
        # length (2/4/8/16/24 frames, segment remainders, reference lengths), stalling the
        # inference thread on each first use; the default heuristics pick well for 1-D convs.
        torch.backends.cudnn.benchmark = False
        # The model runs in bf16 and gains nothing from TF32; the talker's fp32 rotary angles
        # would go through a TF32 matmul (an error near 0.5 rad at position 1000).
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        # cuDNN's attention builds a plan for every new shape, and a decode step's key length
        # grows every frame (about 30% of a decode step on an H200, improvements.md). The flash
        # and memory-efficient kernels need no plan.
        torch.backends.cuda.enable_cudnn_sdp(False)

    def pinned(self, *shape: int, dtype: torch.dtype) -> torch.Tensor:
        return torch.zeros(*shape, dtype=dtype, pin_memory=True)

    def upload(self, tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
        # pin_memory() takes a block of the caching host allocator, which records the copy
        # and hands the block out again only after it has run.
        return tensor.pin_memory().to(device, non_blocking=True)

    def record(self) -> Event | None:
        return _CudaEvent()

    def capturer(self) -> Capturer:
        return CudaCapturer()

    def synchronize(self) -> None:
        torch.cuda.synchronize()

    def memory(self) -> dict[str, Any] | None:
        free, total = torch.cuda.mem_get_info()
        return {
            "name": torch.cuda.get_device_name(),
            "allocated_mib": round(torch.cuda.memory_allocated() / 2**20, 1),
            "reserved_mib": round(torch.cuda.memory_reserved() / 2**20, 1),
            "free_mib": round(free / 2**20, 1),
            "total_mib": round(total / 2**20, 1),
        }

    def reserved_bytes(self) -> int:
        return int(torch.cuda.memory_reserved())

    def empty_cache(self) -> None:
        torch.cuda.empty_cache()
        torch.cuda.ipc_collect()  # type: ignore[no-untyped-call]


_CPU = CpuRuntime()
_CUDA = CudaRuntime()
_override: DeviceRuntime | None = None
_override_lock = threading.Lock()


def runtime_for(device: str | torch.device) -> DeviceRuntime:
    """The runtime of a device string or torch device: CUDA (or the simulated device while one
    is in use) for `cuda` and `cuda:N`, the CPU's otherwise."""
    if torch.device(device).type != "cuda":
        return _CPU
    return _override if _override is not None else _CUDA


def cuda_visible() -> bool:
    """Whether `DEVICE=auto` means CUDA: a GPU, or the simulated device."""
    return _override is not None or torch.cuda.is_available()


@contextlib.contextmanager
def use_runtime(runtime: DeviceRuntime) -> Iterator[DeviceRuntime]:
    """Serve `cuda` through `runtime` (the simulated device) inside the block, process-wide:
    the engine's own threads look it up when they start."""
    global _override
    with _override_lock:
        if _override is not None:
            raise RuntimeError("a simulated CUDA device is already in use")
        _override = runtime
    try:
        yield runtime
    finally:
        with _override_lock:
            _override = None
