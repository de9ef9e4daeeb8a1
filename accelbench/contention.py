"""Other load on the host while a case runs its calls: how many CPUs other processes (and, on a
virtual machine, the hypervisor's steal) kept busy, on average, over the case's warm-up and samples.

A figure measured beside other work is that machine's figure at that moment, not the code's: on
a 2-core CI machine one CPU-heavy neighbour moves a quick case by 10-50 %. The harness records the
load with every case (`CaseRecord.other_load`), `bench compare` does not call a change beyond its
threshold a regression (or an improvement) where either run was loaded, and the progress line
marks such a case.

Read from Linux's /proc/stat (every CPU's busy time: user, nice, system, irq, softirq, steal)
less this process's own CPU time (getrusage: all its threads, and the children it waited for, such
as a kernel compiler), over the wall time between. A run of several ranks on one host records
nothing: the other ranks are its own work.
Elsewhere (no /proc/stat) nothing is recorded. /proc/stat counts in clock ticks (10 ms at the
usual 100 Hz), so a window shorter than MIN_WINDOW_S gives no figure: the harness then measures from
the start of the case's preparation instead.
"""
from __future__ import annotations

import os
import resource
import time
from typing import Optional

STAT = "/proc/stat"
# A case whose neighbours kept this many CPUs busy on average ran beside other load. A quiet
# machine's daemons use a few hundredths of a CPU; one busy neighbouring process, one CPU.
LOADED_CPUS = 0.25
MIN_WINDOW_S = 0.2  # 20 ticks per CPU at 100 Hz: the tick quantization below 0.1 CPUs


def _busy_s() -> Optional[float]:
    try:
        with open(STAT, encoding="ascii") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    ticks = [int(x) for x in fields[1:]]
    # user nice system idle iowait irq softirq steal (guest time is inside user already)
    busy = sum(ticks[i] for i in (0, 1, 2, 5, 6, 7) if i < len(ticks))
    return busy / os.sysconf("SC_CLK_TCK")


def _own_s() -> float:
    """This process's CPU time, all its threads, and its finished children's (a compiler it ran)."""
    return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


class OtherLoad:
    """`load = OtherLoad.start()` ... `load.stop()`: CPUs other work kept busy on average in
    between, or None where it cannot be read (no /proc/stat, a window too short)."""

    def __init__(self, busy_s: Optional[float], own_s: float, wall_s: float) -> None:
        self._busy_s, self._own_s, self._wall_s = busy_s, own_s, wall_s

    @classmethod
    def start(cls) -> "OtherLoad":
        return cls(_busy_s(), _own_s(), time.perf_counter())

    def stop(self) -> Optional[float]:
        busy, wall = _busy_s(), time.perf_counter() - self._wall_s
        if self._busy_s is None or busy is None or wall < MIN_WINDOW_S:
            return None
        return max(0.0, ((busy - self._busy_s) - (_own_s() - self._own_s)) / wall)


def loaded(cpus: Optional[float]) -> bool:
    return cpus is not None and cpus >= LOADED_CPUS
