"""Peer-to-peer copies between every pair of GPUs (accelbench/fleet/peers.py): needs 2 or more GPUs of
one machine (the multi-GPU runs issue); each copy checked, each pair's figure and each device's slowest."""
import pytest
import torch

from accelbench.fleet.peers import device_figures, matrix


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 or more GPUs of one machine")
def test_every_ordered_pair_is_copied_checked_and_timed():
    devices = list(range(torch.cuda.device_count()))
    pairs = matrix(devices, nbytes=64 * 2**20)
    assert len(pairs) == len(devices) * (len(devices) - 1)
    assert all(p.failed is None and p.gbps and p.gbps > 1.0 for p in pairs), pairs
    figures = device_figures(pairs)
    assert set(figures) == set(devices)
    for d in devices:
        assert figures[d]["p2p send, slowest peer, gbps"] == min(p.gbps for p in pairs if p.source == d)
