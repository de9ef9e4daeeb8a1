"""Run under `torch.distributed.run --nproc-per-node 2`: the tensor-parallel decoder generates what
the whole model does on one rank, from the same synthetic weights. Prints one line per rank."""
import torch
import torch.distributed as dist

from accelbench.e2e.decode.model import KVCache, Llama, generate_eager
from accelbench.e2e.decode.tensor_parallel import all_reduce_sum, shard_config, shard_of
from accelbench.e2e.decode.weights import synthetic_weights, tiny_config

dist.init_process_group("gloo")
rank, ranks = dist.get_rank(), dist.get_world_size()
config = tiny_config(qkv_bias=True)  # biases are split with their projections
cpu = torch.device("cpu")
whole = Llama(config, synthetic_weights(config, torch.float32, cpu))
part = Llama(shard_config(config, ranks), synthetic_weights(config, torch.float32, cpu, shard=shard_of(rank, ranks)),
             reduce=all_reduce_sum())
prompt = torch.randint(0, config.vocab, (2, 9), generator=torch.Generator().manual_seed(7))
expected = generate_eager(whole, prompt, 12, KVCache.empty(config, 2, 21, torch.float32, cpu))
got = generate_eager(part, prompt, 12, KVCache.empty(part.config, 2, 21, torch.float32, cpu))
logits_whole = whole.forward(prompt, torch.arange(9))
logits_part = part.forward(prompt, torch.arange(9))
close = torch.allclose(logits_whole, logits_part, rtol=1e-4, atol=1e-4)
print(f"rank {rank}: tokens {'equal' if torch.equal(expected, got) else 'DIFFER'}, logits {'close' if close else 'FAR'}",
      flush=True)
dist.destroy_process_group()
