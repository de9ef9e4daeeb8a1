"""A plugin benchmark for `bench fleet`'s tests (ACCELBENCH_PLUGINS): the GEMM benchmark, whose
process dies on the device FLEET_FAULT_DIE names and hangs on the one FLEET_FAULT_HANG names."""
import os
import signal
import time

from accelbench.microbench.gemm import Gemm


class FaultyGemm(Gemm):
    name = "faulty-gemm"
    description = "the GEMM benchmark, dying or hanging on a chosen device (tests only)"

    def prepare(self, case, backend):
        device = str(backend.device_index)
        if device == os.environ.get("FLEET_FAULT_DIE"):
            os.kill(os.getpid(), signal.SIGKILL)
        if device == os.environ.get("FLEET_FAULT_HANG"):
            time.sleep(600)
        return super().prepare(case, backend)
