"""GPU check: every Triton fused FP8 quantizer against the reference quantizer (accelbench.quant),
bit for bit, on one GPU: current, static and delayed scaling at per-tensor, per-row and 1x128
granularity with exact, power-of-two and Gaudi 2 scale rounding (delayed over 20 steps, past its
16-step history, amax jumping up and down), on bf16 activations of LLM-like shapes.

Usage: python3 scripts/check_fused_quant.py OUT_DIR   (writes OUT_DIR/fused_quant.json; exit 1 on a mismatch)
"""
from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import torch

from accelbench import fused_quant
from accelbench.quant import (E4M3, E4M3_GAUDI2, DelayedScaling, OperandScheme, block_amax, quantize,
                              quantize_with_scale, scale_from_amax)

SHAPES = [(8192, 8192), (1024, 3584), (333, 1280)]


def scheme_of(block, rounding):
    return OperandScheme(E4M3_GAUDI2 if rounding == "gaudi2" else E4M3, block, rounding)


def draw(shape, seed, spread=1.0):
    g = torch.Generator(device="cuda").manual_seed(seed)
    x = torch.randn(shape, generator=g, device="cuda") * spread
    x[::97] *= 50.0  # outlier rows
    return x.to(torch.bfloat16)


def mismatch(fused, ref) -> dict:
    q = (fused.q.view(torch.uint8) != ref.q.view(torch.uint8)).sum().item()
    s = (fused.scale.reshape(ref.scale.shape) != ref.scale).sum().item()
    return {"values_differing": q, "scales_differing": s}


def main(out: Path) -> int:
    rows = []
    for shape, block, rounding in itertools.product(SHAPES, [(0, 0), (1, 0), (1, 128)], ["exact", "pow2", "gaudi2"]):
        if block == (1, 128) and shape[1] % 128:
            continue
        scheme = scheme_of(block, rounding)
        x = draw(shape, 1)
        rows.append({"policy": "current", "shape": shape, "block": block, "rounding": rounding,
                     **mismatch(fused_quant.dynamic(x, scheme), quantize(x, scheme))})
        calibrated = scale_from_amax(block_amax(draw(shape, 2), block), scheme.fmt, rounding)
        y = draw(shape, 3, spread=1.5)
        rows.append({"policy": "static", "shape": shape, "block": block, "rounding": rounding,
                     **mismatch(fused_quant.static(y, calibrated, scheme),
                                quantize_with_scale(y, calibrated, block, scheme.fmt))})
        if block == (1, 128):
            continue  # delayed scaling: per tensor and per row
        for reduce in ("max", "most_recent"):
            policy = DelayedScaling(reduce=reduce)
            history, worst = None, {"values_differing": 0, "scales_differing": 0}
            for step in range(20):
                z = draw(shape, 10 + step, spread=[1.0, 8.0, 0.1, 30.0][step % 4])
                amax = block_amax(z, block)
                if history is None:
                    history = fused_quant.DelayedHistory.empty(tuple(amax.shape), z.device, reduce=reduce)
                ref = quantize_with_scale(z, scale_from_amax(policy.amax(amax), scheme.fmt, rounding), block, scheme.fmt)
                found = mismatch(fused_quant.delayed(z, history, scheme), ref)
                worst = {k: max(worst[k], found[k]) for k in worst}
            history_equal = torch.equal(history.ring.amax(0), torch.stack(list(policy.history)).amax(0))
            rows.append({"policy": f"delayed ({reduce}, 20 steps)", "shape": shape, "block": block,
                         "rounding": rounding, **worst, "history_equal": history_equal})
    bad = [r for r in rows if r["values_differing"] or r["scales_differing"] or r.get("history_equal") is False]
    result = {"device": torch.cuda.get_device_name(), "checks": len(rows), "mismatching": len(bad), "rows": rows}
    out.mkdir(parents=True, exist_ok=True)
    (out / "fused_quant.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}))
    for r in bad:
        print("MISMATCH", r)
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(Path(sys.argv[1])))
