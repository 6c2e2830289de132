"""The simulated CUDA device's tensors and operations: `SimulatedTensor` keeps CPU data under a
tensor that says `cuda:0`; `SimulatedDevice` checks each operation on it (mixing it with a
CPU tensor raises as CUDA would), counts what it costs the host (a sync, a pageable or an
asynchronous copy, a launch) and runs it on the CPU data. Calls are handled in
`__torch_function__`, above C++: the bindings of a CUDA build look for a driver (device
guards, kernel selection) before an aten operation reaches the dispatcher;
`__torch_dispatch__` catches what C++ runs itself. Two thread-bound modes (simulated_modes.py)
turn factory calls and host-to-device moves that name `cuda` into simulated tensors.
"""

from __future__ import annotations

import contextlib
import gc
import threading
import weakref
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils._pytree import tree_flatten, tree_map_only

from server.engine.device.ledger import CaptureViolation, CrossDeviceError, Ledger

SIMULATED = torch.device("cuda", 0)

# Operations whose result decides a shape or a Python value: the host waits for the device.
_SYNCING = frozenset({"_local_scalar_dense", "nonzero", "masked_select", "unique", "_unique2", "equal", "is_nonzero"})
# The same, as torch functions.
_SYNCING_CALLS = frozenset({"nonzero", "masked_select", "unique", "unique_consecutive", "equal", "argwhere"})
# Functions that only read a tensor's metadata: no kernel, nothing to check.
_METADATA = frozenset(
    {
        torch.Tensor.size,
        torch.Tensor.dim,
        torch.Tensor.numel,
        torch.Tensor.stride,
        torch.Tensor.is_contiguous,
        torch.Tensor.storage_offset,
        torch.Tensor.element_size,
        torch.Tensor.__len__,
        torch.Tensor.data_ptr,
        torch.Tensor.untyped_storage,
        torch.Tensor.is_floating_point,
        torch.Tensor.is_complex,
        torch.Tensor.get_device,
        torch.Tensor.__hash__,
    }
)
_METADATA_NAMES = frozenset({"__get__"})  # properties: shape, device, dtype, ndim, is_cuda, ...
_NOT_SPECIAL = object()
# Operations that accept CPU index tensors with CUDA data (copying the indices first).
_CPU_INDICES_ALLOWED = frozenset({"index", "index_put", "index_put_", "_index_put_impl_"})


class SimulatedTensor(torch.Tensor):
    """CPU data under a tensor whose device is `cuda:0`."""

    elem: torch.Tensor
    sim: SimulatedDevice

    @staticmethod
    def __new__(cls, elem: torch.Tensor, sim: SimulatedDevice) -> SimulatedTensor:
        tensor = torch.Tensor._make_wrapper_subclass(
            cls,
            elem.shape,
            strides=elem.stride(),
            storage_offset=elem.storage_offset(),
            dtype=elem.dtype,
            device=SIMULATED,
            requires_grad=False,
        )
        tensor.elem = elem
        tensor.sim = sim
        sim.live.add(tensor)
        return tensor

    def __repr__(self) -> str:  # type: ignore[override]
        return f"SimulatedTensor({self.elem!r}, device='{SIMULATED}')"

    @classmethod
    def __torch_function__(
        cls, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        # Handled here, above C++: the bindings of a CUDA build would look for a driver
        # (device guards, kernel selection) before an aten operation reached the dispatcher.
        leaves, _ = tree_flatten((args, kwargs or {}))
        sim = next(leaf.sim for leaf in leaves if isinstance(leaf, SimulatedTensor))
        return sim.call(func, args, kwargs or {})

    @classmethod
    def __torch_dispatch__(  # type: ignore[override]
        cls, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        leaves, _ = tree_flatten((args, kwargs or {}))
        sim = next(leaf.sim for leaf in leaves if isinstance(leaf, SimulatedTensor))
        return sim.dispatch(func, args, kwargs or {})


def names_cuda(device: Any) -> bool:
    """Whether a `device` argument names CUDA (the simulated device answers for it)."""
    return device is not None and torch.device(device).type == "cuda"


class SimulatedDevice:
    """The simulated device's accounting and its handling of operations; SimulatedCuda
    (server/engine/device/simulated.py) adds the runtime seam."""

    def __init__(self) -> None:
        self.ledger = Ledger()
        self.live: weakref.WeakSet[SimulatedTensor] = weakref.WeakSet()
        self._pinned: dict[int, weakref.ref[torch.Tensor]] = {}
        self._local = threading.local()  # per thread: inside a replay, capturing
        self._patched: Any = None

    # ---- the device --------------------------------------------------------------------

    def wrap(self, tensor: torch.Tensor) -> torch.Tensor:
        if isinstance(tensor, SimulatedTensor):
            return tensor
        return SimulatedTensor(tensor, self)

    def launch(self) -> None:
        if getattr(self._local, "replaying", False):
            self.ledger.ops_inside += 1
        else:
            self.ledger.ops_outside += 1

    def sync(self, reason: str) -> None:
        if getattr(self._local, "capturing", False):
            raise CaptureViolation(f"{reason}: operation not permitted when stream is capturing")
        self.ledger.host_syncs[reason] += 1

    def host_to_device(self, pinned: bool, blocking: bool) -> None:
        """A copy to the device: asynchronous from pinned memory, else pageable (the host
        waits for the stream first, as CUDA does for pageable memory)."""
        if pinned and not blocking:
            self.ledger.async_copies += 1
            return
        if getattr(self._local, "capturing", False):
            raise CaptureViolation("pageable host-to-device copy: operation not permitted when stream is capturing")
        self.ledger.pageable_copies += 1
        self.sync("pageable copy to the device")

    def is_pinned(self, tensor: torch.Tensor) -> bool:
        if isinstance(tensor, SimulatedTensor) or tensor.device.type != "cpu":
            return False
        ref = self._pinned.get(tensor.untyped_storage().data_ptr())
        return ref is not None and ref() is not None

    def call(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """A torch function with simulated tensors among its arguments: checked, counted, then
        run on their CPU data, its tensor results wrapped again."""
        if func in _METADATA or getattr(func, "__name__", "") in _METADATA_NAMES:
            with torch._C.DisableTorchFunctionSubclass():
                return func(*args, **kwargs)
        name = getattr(func, "__name__", str(func))
        self_arg = args[0] if args and isinstance(args[0], SimulatedTensor) else None
        if self_arg is not None:
            special = self._tensor_method(func, self_arg, args, kwargs)
            if special is not _NOT_SPECIAL:
                return special
        if name in ("copy_",) and len(args) >= 2:
            return self._copy(args[0], args[1], bool(kwargs.get("non_blocking", args[2] if len(args) > 2 else False)))
        if name in _SYNCING_CALLS:
            self.sync(name)
        self._check_devices(name, args, kwargs)
        inputs = {id(t.elem): t for t in tree_flatten((args, kwargs))[0] if isinstance(t, SimulatedTensor)}
        storages = {_storage(t.elem) for t in inputs.values()}
        host_args, host_kwargs = tree_map_only((SimulatedTensor, torch.device, str), _on_host, (args, kwargs))
        with torch._C.DisableTorchFunctionSubclass():
            out = func(*host_args, **host_kwargs)
        launched = name.endswith("_") and name != "requires_grad_"

        def back(tensor: torch.Tensor) -> torch.Tensor:
            nonlocal launched
            original = inputs.get(id(tensor))
            if original is not None:
                return original
            if _storage(tensor) not in storages:
                launched = True
            return self.wrap(tensor)

        wrapped = tree_map_only(torch.Tensor, back, out)
        if launched:
            self.launch()
        return wrapped

    def _tensor_method(self, func: Any, tensor: SimulatedTensor, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Tensor methods that leave the device or read it back."""
        if func is torch.Tensor.tolist:
            self.sync("tolist")
            return tensor.elem.tolist()
        if func in (
            torch.Tensor.item,
            torch.Tensor.__bool__,
            torch.Tensor.__int__,
            torch.Tensor.__float__,
            torch.Tensor.__index__,
        ):
            self.sync("item")
            return func(tensor.elem)
        if func is torch.Tensor.numpy or func is torch.Tensor.__array__:
            raise TypeError("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() first.")
        if func in (torch.Tensor.__repr__, torch.Tensor.__str__, torch.Tensor.__format__):
            return repr(tensor)
        if func is torch.Tensor.cpu or (func is torch.Tensor.to and _leaves_device(args[1:], kwargs)):
            self.sync("copy to the host")
            with torch._C.DisableTorchFunctionSubclass():
                host_args, host_kwargs = tree_map_only((SimulatedTensor, torch.device, str), _on_host, (args, kwargs))
                return func(*host_args, **host_kwargs)
        if func is torch.Tensor.__setitem__:
            value = args[2]
            if not isinstance(value, torch.Tensor):
                # As CUDA does: a Python value becomes a CPU scalar; one element is copied in
                # (a blocking copy), more are filled (a kernel).
                value = torch.tensor(value, dtype=tensor.dtype)
            index = args[1]
            host_indices = [
                i for i in tree_flatten(index)[0] if isinstance(i, torch.Tensor) and not isinstance(i, SimulatedTensor)
            ]
            if (
                host_indices
                or (not isinstance(value, SimulatedTensor) and value.dim() > 0)
                or (
                    not isinstance(value, SimulatedTensor)
                    and _elem(tensor)[tree_map_only(SimulatedTensor, _elem, index)].numel() == 1
                )
            ):
                self.host_to_device(pinned=False, blocking=True)
            else:
                self.launch()
            _elem(tensor)[tree_map_only(SimulatedTensor, _elem, index)] = _elem(value)
            return None
        if func is torch.Tensor.__getitem__:
            index = args[1]
            if any(
                isinstance(i, torch.Tensor) and not isinstance(i, SimulatedTensor) and i.dim() > 0
                for i in tree_flatten(index)[0]
            ):
                self.host_to_device(pinned=False, blocking=True)
            out = tensor.elem[tree_map_only(SimulatedTensor, _elem, index)]
            if _storage(out) != _storage(tensor.elem):
                self.launch()
            return self.wrap(out)
        return _NOT_SPECIAL

    def dispatch(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        name = func.overloadpacket.__name__
        self._check_devices(name, args, kwargs)
        if name == "copy_":
            return self._copy(args[0], args[1], bool(kwargs.get("non_blocking", args[2] if len(args) > 2 else False)))
        if name in _SYNCING:
            self.sync(f"aten.{name}")
        self.launch()
        unwrapped_args, unwrapped_kwargs = tree_map_only(SimulatedTensor, _elem, (args, kwargs))
        to_host = name == "_to_copy" and kwargs.get("device") is not None and not names_cuda(kwargs["device"])
        if to_host:
            self.sync("copy to the host")
            unwrapped_kwargs = {**unwrapped_kwargs, "pin_memory": None}
        elif names_cuda(unwrapped_kwargs.get("device")):
            unwrapped_kwargs = {**unwrapped_kwargs, "device": torch.device("cpu")}
        out = func(*unwrapped_args, **unwrapped_kwargs)
        if to_host:
            return out
        originals = {id(t.elem): t for t in tree_flatten((args, kwargs))[0] if isinstance(t, SimulatedTensor)}
        return tree_map_only(torch.Tensor, lambda t: originals.get(id(t)) or self.wrap(t), out)

    def _copy(self, target: torch.Tensor, source: torch.Tensor, non_blocking: bool) -> torch.Tensor:
        target_on, source_on = isinstance(target, SimulatedTensor), isinstance(source, SimulatedTensor)
        if target_on and not source_on:
            self.host_to_device(pinned=self.is_pinned(source), blocking=not non_blocking)
        elif source_on and not target_on:
            if non_blocking and self.is_pinned(target):
                self.ledger.async_copies += 1
            else:
                self.sync("copy to the host")
        else:
            self.launch()
        _elem(target).copy_(_elem(source))
        return target

    def _check_devices(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if name in ("copy_", "_to_copy"):
            return
        host = [
            leaf
            for leaf in tree_flatten((args, kwargs))[0]
            if isinstance(leaf, torch.Tensor) and not isinstance(leaf, SimulatedTensor) and leaf.dim() > 0
        ]
        if not host:
            return
        if name in _CPU_INDICES_ALLOWED:
            self.host_to_device(pinned=False, blocking=True)
            return
        self.ledger.cross_device.append(name)
        raise CrossDeviceError(
            f"Expected all tensors to be on the same device, but found at least two devices, cuda:0 and cpu! ({name})"
        )

    def capturing(self) -> contextlib.AbstractContextManager[None]:
        return self._while("capturing")

    def replaying(self) -> contextlib.AbstractContextManager[None]:
        return self._while("replaying")

    @contextlib.contextmanager
    def _while(self, flag: str) -> Iterator[None]:
        """Set a per-thread flag for the block (capturing a graph, replaying one)."""
        setattr(self._local, flag, True)
        try:
            yield
        finally:
            setattr(self._local, flag, False)

    def live_bytes(self) -> int:
        """Bytes of CPU storage behind live simulated tensors (each storage counted once)."""
        gc.collect()
        storages = {t.elem.untyped_storage().data_ptr(): t.elem.untyped_storage().nbytes() for t in list(self.live)}
        return sum(storages.values())


def _on_host(value: Any) -> Any:
    """An argument as the CPU computation takes it: a simulated tensor's data, the simulated
    device as the CPU."""
    if isinstance(value, SimulatedTensor):
        return value.elem
    if isinstance(value, torch.device):
        return torch.device("cpu") if value.type == "cuda" else value
    if isinstance(value, str) and (value == "cuda" or value.startswith("cuda:")):
        return "cpu"
    return value


def _leaves_device(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether `.to(*args, **kwargs)` names a device other than CUDA."""
    device = kwargs.get("device")
    for value in args:
        if isinstance(value, (str, torch.device)):
            device = value
    return device is not None and torch.device(device).type != "cuda"


def _storage(tensor: torch.Tensor) -> int | None:
    """Where a tensor's data lives (None for tensors without storage, as vmap's batched ones)."""
    try:
        return int(tensor.untyped_storage().data_ptr())
    except (NotImplementedError, RuntimeError):
        return None


def _elem(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.elem if isinstance(tensor, SimulatedTensor) else tensor
