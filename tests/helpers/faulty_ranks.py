"""`bench` with one more benchmark, `faulty-collectives`: the collectives, where one rank
misbehaves as FAULT says (raise / sleep / corrupt, on rank FAULT_RANK, in cases whose id
contains FAULT_CASE). Run as `python faulty_ranks.py run --bench faulty-collectives ...`; the
launcher starts every rank through this same script, so they all know the benchmark."""
import dataclasses
import os
import sys
import time

import torch.distributed as dist

from accelbench.cli import main
from accelbench.microbench.collectives import Collectives


class FaultyCollectives(Collectives):
    name = "faulty-collectives"
    description = "collectives with one misbehaving rank (tests only)"

    def prepare(self, case, backend):
        workload = super().prepare(case, backend)
        fault = os.environ.get("FAULT", "")
        if dist.get_rank() != int(os.environ.get("FAULT_RANK", "1")) or os.environ.get("FAULT_CASE", "") not in case.case_id:
            return workload
        if fault == "prepare":
            raise ValueError("injected fault while preparing")
        run = workload.run

        def faulty_run():
            if fault == "raise":
                raise RuntimeError("injected fault")
            if fault == "sleep":
                time.sleep(600)
            if fault == "exit":
                os._exit(7)
            out = run()
            if fault == "corrupt":
                out.view(-1)[3] += 1
            return out

        return dataclasses.replace(workload, run=faulty_run)


if __name__ == "__main__":
    sys.exit(main())
