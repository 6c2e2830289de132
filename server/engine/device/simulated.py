"""A simulated CUDA device: the engine's whole CUDA path runs on the CPU, with tensors that say
`cuda:0`, for the tests (`pytest -m simulated_cuda`) and `bench/gpu.py --device sim`.

Why a tensor subclass rather than `FakeTensorMode`: fake tensors carry no values, so they
cannot decide end of speech, fill chunks or run a generation to its end; a wrapper subclass
keeps real CPU data under a tensor that reports `cuda:0`, so everything runs for real while
the device is checked and counted (LEARNING_LOG.md).

- `SimulatedTensor` (server/engine/device/simulated_ops.py) wraps a CPU tensor. Every
  operation on it runs on the CPU data, raises as CUDA would when it mixes it with a CPU
  tensor (a 0-dim CPU tensor is a scalar, as on CUDA; CPU indices are allowed and cost a
  copy), and is counted by what it costs the host: a host synchronisation (`.item()`,
  `.tolist()`, a blocking copy to the host, a pageable copy to the device, a data-dependent
  shape), an asynchronous copy, or a kernel launch.
- On each thread bound to the device (`bound()`: the engine's threads, a test's), a dispatch
  mode turns factory calls given `device="cuda"` into simulated tensors, and a function mode
  does the same for `torch.tensor(..., device="cuda")` and `.to("cuda")` of a CPU tensor
  (server/engine/device/simulated_modes.py).
- The runtime seam (server/engine/device/runtime.py) is implemented here too: pinned host
  buffers (tracked, so a copy from one counts as asynchronous), events (their wait is the
  host sync), and capture, which records the graph's name, runs the function once with
  synchronisation forbidden (as stream capture forbids it) and replays it eagerly, counting
  its operations as inside a graph.

Everything it counts is in `ledger` (server/engine/device/ledger.py); `Ledger.since(snapshot)`
gives the cost of a stretch.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import torch

from server.engine.device.ledger import CaptureViolation, CrossDeviceError, Ledger
from server.engine.device.simulated_modes import FactoriesOnDevice, HostToDevice
from server.engine.device.simulated_ops import SimulatedDevice, SimulatedTensor

__all__ = ["CaptureViolation", "CrossDeviceError", "Ledger", "SimulatedCuda", "SimulatedTensor"]


class _SimulatedEvent:
    def __init__(self, sim: SimulatedCuda) -> None:
        self.sim = sim

    def wait(self) -> None:
        self.sim.sync("event wait")


class _SimulatedCapturer:
    def __init__(self, sim: SimulatedCuda) -> None:
        self.sim = sim

    def __call__(self, name: str, run: Callable[[], None]) -> Callable[[], None]:
        sim = self.sim
        with sim.capturing():
            run()
        sim.ledger.captures.append(name)

        def replay() -> None:
            sim.ledger.replays[name] += 1
            with sim.replaying():
                run()

        return replay

    def release(self) -> None:
        return None


class SimulatedCuda(SimulatedDevice):
    """The simulated device and its runtime (server/engine/device/runtime.py's seam)."""

    name = "simulated cuda"
    asynchronous = True

    # ---- the runtime seam --------------------------------------------------------------

    def configure(self) -> None:
        return None

    @contextlib.contextmanager
    def bound(self) -> Iterator[None]:
        with HostToDevice(self), FactoriesOnDevice(self):
            yield

    def load_map(self, device: str) -> str:
        return "cpu"  # loaded on the CPU, then placed (`place`) as device_map places it on a GPU

    def place(self, module: torch.nn.Module) -> None:
        placed: dict[int, torch.Tensor] = {}  # tied weights stay tied
        for sub in module.modules():
            for key, parameter in list(sub._parameters.items()):
                if parameter is not None:
                    if id(parameter) not in placed:
                        placed[id(parameter)] = torch.nn.Parameter(self.wrap(parameter.detach()), requires_grad=False)
                    sub._parameters[key] = placed[id(parameter)]  # type: ignore[assignment]
            for key, buffer in list(sub._buffers.items()):
                if buffer is not None:
                    if id(buffer) not in placed:
                        placed[id(buffer)] = self.wrap(buffer)
                    sub._buffers[key] = placed[id(buffer)]

    def pinned(self, *shape: int, dtype: torch.dtype) -> torch.Tensor:
        tensor = torch.zeros(*shape, dtype=dtype)
        self._pinned[tensor.untyped_storage().data_ptr()] = weakref.ref(tensor)
        return tensor

    def upload(self, tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
        self.host_to_device(pinned=True, blocking=False)
        return self.wrap(tensor.clone())

    def record(self) -> _SimulatedEvent:
        return _SimulatedEvent(self)

    def capturer(self) -> _SimulatedCapturer:
        return _SimulatedCapturer(self)

    def synchronize(self) -> None:
        self.sync("synchronize")

    def memory(self) -> dict[str, Any] | None:
        allocated = self.live_bytes() / 2**20
        return {
            "name": "simulated CUDA device",
            "allocated_mib": round(allocated, 1),
            "reserved_mib": round(allocated, 1),
            "free_mib": 0.0,
            "total_mib": 0.0,
        }

    def reserved_bytes(self) -> int:
        return self.live_bytes()

    def empty_cache(self) -> None:
        return None

    # ---- in use --------------------------------------------------------------------------

    @contextlib.contextmanager
    def installed(self) -> Iterator[SimulatedCuda]:
        """Serve `cuda` through this device, process-wide, and bind the calling thread.
        `torch.cuda`'s lazy initialisation (which looks for a driver) is skipped meanwhile."""
        from server.engine.device.runtime import use_runtime

        lazy_init = torch.cuda._lazy_init
        torch.cuda._lazy_init = lambda: None
        try:
            with use_runtime(self), self.bound(), _masks_without_vmap():
                yield self
        finally:
            torch.cuda._lazy_init = lazy_init


@contextlib.contextmanager
def _masks_without_vmap() -> Iterator[None]:
    """transformers builds attention masks by vmapping elementwise mask functions over index
    ranges; functorch's vmap cannot see through a wrapper subclass. Broadcasting the index
    ranges against each other gives the same masks from the same functions."""
    try:
        from transformers import masking_utils
    except ImportError:  # the model package is not installed: nothing builds masks
        yield
        return

    def broadcast(mask_function: Callable[..., torch.Tensor], bh_indices: bool = True) -> Callable[..., torch.Tensor]:
        def run(batch: Any, head: Any, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
            q, k = query[:, None], key[None, :]
            if not bh_indices:
                return torch.broadcast_to(mask_function(None, None, q, k), (query.shape[0], key.shape[0]))
            b, h = batch[:, None, None, None], head[None, :, None, None]
            shape = (batch.shape[0], head.shape[0], query.shape[0], key.shape[0])
            return torch.broadcast_to(mask_function(b, h, q[None, None], k[None, None]), shape)

        return run

    original = masking_utils._vmap_for_bhqkv
    masking_utils._vmap_for_bhqkv = broadcast
    try:
        yield
    finally:
        masking_utils._vmap_for_bhqkv = original
