"""`hccl` for torch.distributed, as importing the real module registers it: here over gloo.

HPU tensors reach the process group's collectives through the dispatcher (c10d ops), where the
stand-in's HpuTensor hands gloo the CPU values inside (`_device.HpuTensor.__torch_dispatch__`),
so multi-rank runs go through `hccl` end to end."""
import torch.distributed as dist

from habana_frameworks import record


def _create_hccl(store, rank, world_size, timeout):
    record("hccl.create", rank=rank, world_size=world_size)
    return dist.ProcessGroupGloo(store, rank, world_size, timeout)


if "hccl" not in dist.Backend.backend_list:
    dist.Backend.register_backend("hccl", _create_hccl, devices=["cpu", "hpu"])
record("import hccl")
