"""The two thread-bound modes that bring tensors onto the simulated device: factory calls
given `device="cuda"`, and host-to-device moves (`torch.tensor(..., device="cuda")`,
`.to("cuda")`, `.cuda()`) of CPU tensors. SimulatedCuda (simulated.py) enters both around
the code it runs; the tensors and the device's accounting are simulated_ops.py's.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map_only

from server.engine.device.simulated_ops import SIMULATED, SimulatedDevice, SimulatedTensor, names_cuda


class FactoriesOnDevice(TorchDispatchMode):
    """Factory operations given `device="cuda"` make simulated tensors (thread-bound)."""

    def __init__(self, sim: SimulatedDevice) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.sim = sim

    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        kwargs = kwargs or {}
        device = kwargs.get("device")
        if device is not None and torch.device(device).type == "cuda":
            self.sim.launch()
            on_host = {**kwargs, "device": torch.device("cpu")}
            if "pin_memory" in on_host:
                on_host["pin_memory"] = None
            out = func(*args, **on_host)
            return tree_map_only(torch.Tensor, self.sim.wrap, out)
        return func(*args, **kwargs)


class HostToDevice(TorchFunctionMode):
    """`torch.tensor(..., device="cuda")` and `.to("cuda")` of a CPU tensor (thread-bound):
    copies to the simulated device, pageable unless from a pinned buffer."""

    def __init__(self, sim: SimulatedDevice) -> None:
        super().__init__()
        self.sim = sim

    def __torch_function__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        kwargs = kwargs or {}
        if func in (torch.tensor, torch.as_tensor) and names_cuda(kwargs.get("device")):
            if func is torch.as_tensor and isinstance(args[0], SimulatedTensor):
                dtype = kwargs.get("dtype")
                return args[0] if dtype is None else args[0].to(dtype)
            host = func(*args, **{**kwargs, "device": "cpu"})
            if host.numel():  # CUDA skips the copy of an empty tensor
                self.sim.host_to_device(pinned=False, blocking=True)
            return self.sim.wrap(host)
        if func in (torch.Tensor.to, torch.Tensor.cuda) and args and not isinstance(args[0], SimulatedTensor):
            source: torch.Tensor = args[0]
            if func is torch.Tensor.cuda:
                device, dtype, non_blocking = SIMULATED, None, bool(kwargs.get("non_blocking", False))
            else:
                device, dtype, non_blocking, _ = torch._C._nn._parse_to(*args[1:], **kwargs)
            if names_cuda(device):
                self.sim.host_to_device(pinned=self.sim.is_pinned(source), blocking=not non_blocking)
                copied = source.to(dtype=dtype, copy=True) if dtype is not None else source.clone()
                return self.sim.wrap(copied)
        return func(*args, **kwargs)
