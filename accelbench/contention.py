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
from pathlib import Path
from typing import Callable, Optional

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


def process_group_cpu_s(pgid: int) -> float:
    """CPU seconds of the live processes of process group `pgid` (a server this run started in a
    group of its own: its work is the case's, not other load), with the children they waited for."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # ended meanwhile
        fields = text[text.rfind(")") + 2:].split()
        # after the name: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime
        if len(fields) > 14 and int(fields[2]) == pgid:
            total += sum(int(fields[i]) for i in (11, 12, 13, 14))
    return total / os.sysconf("SC_CLK_TCK")


class OtherLoad:
    """`load = OtherLoad.start()` ... `load.stop()`: CPUs other work kept busy on average in
    between, or None where it cannot be read (no /proc/stat, a window too short). `also`: CPU
    seconds of other processes that do the case's own work (a server the run started)."""

    def __init__(self, busy_s: Optional[float], own_s: float, wall_s: float,
                 also: Optional[Callable[[], float]] = None) -> None:
        self._busy_s, self._own_s, self._wall_s, self._also = busy_s, own_s, wall_s, also

    @classmethod
    def start(cls, also: Optional[Callable[[], float]] = None) -> "OtherLoad":
        return cls(_busy_s(), _own_s() + (also() if also else 0.0), time.perf_counter(), also)

    def stop(self) -> Optional[float]:
        busy, wall = _busy_s(), time.perf_counter() - self._wall_s
        if self._busy_s is None or busy is None or wall < MIN_WINDOW_S:
            return None
        own = _own_s() + (self._also() if self._also else 0.0)
        return max(0.0, ((busy - self._busy_s) - (own - self._own_s)) / wall)


def loaded(cpus: Optional[float]) -> bool:
    return cpus is not None and cpus >= LOADED_CPUS
