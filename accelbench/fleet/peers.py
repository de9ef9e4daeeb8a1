"""Peer-to-peer copy bandwidth between every ordered pair of a node's GPUs, in one process that holds
them all (the per-device processes of `bench fleet` each see one device only):

    python -m accelbench.fleet.peers --devices 0,1,2,3 --out peers.json [--bytes 268435456]

For each pair (source, destination) a tensor of `--bytes` on the source is copied into one on the
destination (`copy_` across devices: a peer copy over NVLink or PCIe where the two can reach each
other, staged through the host where they cannot), REPEATS times between synchronizations of both;
GB/s = bytes × copies ÷ seconds. Each copy is checked first: the destination, brought back, must
equal the source bit for bit, else the pair fails and gives no figure. A link slower than its
peers' shows as that pair's figure, and in the smallest of each device's sends and receives, which
`bench fleet` judges beside the other devices'.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

REPEATS = 10
DEFAULT_BYTES = 256 * 2**20


@dataclass
class PairCopy:
    source: int
    destination: int
    gbps: Optional[float] = None
    peer_access: Optional[bool] = None  # can the source reach the destination's memory directly
    failed: Optional[str] = None


def copy_pair(source: int, destination: int, nbytes: int) -> PairCopy:
    import torch
    out = PairCopy(source, destination, peer_access=torch.cuda.can_device_access_peer(source, destination))
    src = torch.randn(nbytes // 4, device=f"cuda:{source}", dtype=torch.float32)
    dst = torch.empty(nbytes // 4, device=f"cuda:{destination}", dtype=torch.float32)
    dst.copy_(src)  # warm-up, and the copy checked
    torch.cuda.synchronize(source)
    torch.cuda.synchronize(destination)
    if not torch.equal(dst.to(src.device), src):
        out.failed = f"the copy from device {source} to device {destination} changed the data"
        return out
    start = time.perf_counter()
    for _ in range(REPEATS):
        dst.copy_(src)
    torch.cuda.synchronize(source)
    torch.cuda.synchronize(destination)
    out.gbps = nbytes * REPEATS / (time.perf_counter() - start) / 1e9
    return out


def matrix(devices: list[int], nbytes: int = DEFAULT_BYTES) -> list[PairCopy]:
    pairs = []
    for s in devices:
        for d in devices:
            if s != d:
                try:
                    pairs.append(copy_pair(s, d, nbytes))
                except Exception as exc:  # one pair's error is that pair's failure, not the matrix's
                    pairs.append(PairCopy(s, d, failed=f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"))
    return pairs


def device_figures(pairs: list[PairCopy]) -> dict[int, dict[str, float]]:
    """Per device: its slowest send and slowest receive among the pairs that were measured."""
    out: dict[int, dict[str, float]] = {}
    for p in pairs:
        if p.gbps is None:
            continue
        for device, name in ((p.source, "p2p send, slowest peer, gbps"), (p.destination, "p2p receive, slowest peer, gbps")):
            figures = out.setdefault(device, {})
            figures[name] = min(figures.get(name, p.gbps), p.gbps)
    return out


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", required=True, help="comma-separated CUDA device indices")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--bytes", type=int, default=DEFAULT_BYTES)
    args = parser.parse_args(argv)
    devices = [int(d) for d in args.devices.split(",") if d.strip()]
    pairs = matrix(devices, args.bytes)
    args.out.write_text(json.dumps({"bytes": args.bytes, "repeats": REPEATS, "pairs": [asdict(p) for p in pairs]},
                                   indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
