"""What the simulated CUDA device counts (server/engine/device/simulated.py), and the errors
it raises where CUDA would."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from server.engine.errors import EngineError


class CrossDeviceError(EngineError, RuntimeError):
    """An operation mixed the simulated device with the CPU, as CUDA would refuse it."""


class CaptureViolation(EngineError, RuntimeError):
    """A host synchronisation or pageable copy while a graph was being captured."""


@dataclass
class Ledger:
    """What the simulated device was asked to do. Counts only grow; `since` subtracts."""

    ops_outside: int = 0  # aten operations outside replays: kernel launches the host pays for
    ops_inside: int = 0  # aten operations inside replays of captured graphs
    host_syncs: Counter[str] = field(default_factory=Counter)  # why the host waited
    pageable_copies: int = 0  # host-to-device copies from pageable memory
    async_copies: int = 0  # copies through pinned memory, to or from the device
    cross_device: list[str] = field(default_factory=list)  # operations that mixed devices
    captures: list[str] = field(default_factory=list)  # graphs captured, by name
    replays: Counter[str] = field(default_factory=Counter)

    def snapshot(self) -> Ledger:
        return Ledger(
            self.ops_outside,
            self.ops_inside,
            Counter(self.host_syncs),
            self.pageable_copies,
            self.async_copies,
            list(self.cross_device),
            list(self.captures),
            Counter(self.replays),
        )

    def since(self, earlier: Ledger) -> Ledger:
        return Ledger(
            self.ops_outside - earlier.ops_outside,
            self.ops_inside - earlier.ops_inside,
            self.host_syncs - earlier.host_syncs,
            self.pageable_copies - earlier.pageable_copies,
            self.async_copies - earlier.async_copies,
            self.cross_device[len(earlier.cross_device) :],
            self.captures[len(earlier.captures) :],
            self.replays - earlier.replays,
        )

    @property
    def syncs(self) -> int:
        return sum(self.host_syncs.values())
