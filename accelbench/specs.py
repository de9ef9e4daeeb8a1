"""Datasheet peaks per device: dense FLOP/s per dtype, memory bandwidth, TDP.

Only dense figures: NVIDIA datasheets print "with sparsity" figures that are 2x the dense
ones; those are never used here. A dtype missing from an entry means the vendor publishes no
dense figure for it, and MFU for that dtype is reported as unknown rather than guessed.
CPU peaks are not in any datasheet: `estimate_cpu_spec` derives them from core count, clock
and ISA flags, and marks them estimated.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Optional

T = 1e12


@dataclass(frozen=True)
class DeviceSpec:
    name: str
    peak_flops: dict[str, float]  # dtype -> dense FLOP/s
    mem_bandwidth_Bps: Optional[float]  # bytes/s
    tdp_w: Optional[float]
    source: str
    estimated: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)
    # The device-to-device link collectives cross, per GPU and per direction (nccl-tests' busbw
    # is compared with this), and what it is.
    link_bandwidth_Bps: Optional[float] = None
    link: Optional[str] = None
    # dtype -> the SM clock (MHz) its peak is computed at; clock-normalized efficiency scales the
    # peak by (measured average SM clock / this). Missing where the vendor does not say.
    reference_clock_mhz: dict[str, float] = field(default_factory=dict)

    def peak(self, dtype: str) -> Optional[float]:
        return self.peak_flops.get(dtype)

    def reference_clock(self, dtype: str) -> Optional[float]:
        return self.reference_clock_mhz.get(dtype)


# Sources:
#  H100: NVIDIA H100 Tensor Core GPU datasheet (nvidia.com/en-us/data-center/h100), SXM5 and
#        PCIe columns; FP64 tensor 67/51 TF, FP32 67/51, TF32 494.7/378 dense (989/756 sparse),
#        BF16/FP16 989.4/756 dense, FP8 1978.9/1513 dense; HBM3 3.35 TB/s (SXM), HBM2e 2.0 TB/s
#        (PCIe); max TDP 700 W (SXM), 350 W (PCIe).
#  H100 NVL: same datasheet, NVL column: TF32 417.5, BF16 835, FP8 1670.5 dense; 3.9 TB/s; 400 W.
#  H200: NVIDIA H200 Tensor Core GPU datasheet (nvidia.com/en-us/data-center/h200), SXM column:
#        compute as H100 SXM; HBM3e 4.8 TB/s, 141 GB; max TDP 700 W.
#  A100: NVIDIA A100 Tensor Core GPU datasheet: FP32 19.5, TF32 156 dense, BF16/FP16 312 dense;
#        40 GB HBM2 1,555 GB/s; 80 GB SXM 2,039 GB/s, 80 GB PCIe 1,935 GB/s; TDP 400 W SXM,
#        250 W (40 GB PCIe), 300 W (80 GB PCIe).
#  Gaudi 2: Intel Gaudi 2 AI accelerator white paper / product brief: MME BF16 432 TFLOPS,
#        FP8 865 TFLOPS; 96 GB HBM2e at 2.46 TB/s; 600 W (HL-225H OAM).
#  Gaudi 3: Intel Gaudi 3 AI Accelerator white paper (2024): MME BF16 and FP8 1835 TFLOPS;
#        128 GB HBM2e at 3.7 TB/s; 900 W (HL-325L OAM).
# Links (per GPU, per direction; datasheets print the bidirectional total):
#  H100/H200 SXM: NVLink 4, 900 GB/s total (18 links x 50 GB/s) -> 450 GB/s each way.
#  H100 NVL: NVLink bridge 600 GB/s -> 300; H200 NVL: 2- or 4-way NVLink bridge 900 GB/s -> 450.
#  H100 PCIe: PCIe Gen5 x16, 128 GB/s total -> 64 (an optional NVLink bridge is not assumed).
#  A100 SXM: NVLink 3, 600 GB/s -> 300. A100 PCIe: PCIe Gen4 x16, 64 GB/s -> 32.
#  Gaudi 2: 24 x 100 GbE RoCE on chip, 21 of them join the 8 cards of an HLS-Gaudi2 server
#        all-to-all: 21 x 12.5 GB/s = 262.5 GB/s each way. Gaudi 3: 24 x 200 GbE, 21 inside the
#        server: 525 GB/s each way (Intel Gaudi 2 and Gaudi 3 white papers).
# Reference clocks of the peaks (per SM and clock: Hopper 4096 dense bf16/fp16 FLOP, 2048 tf32, 8192 fp8,
# 256 fp32 FMA-FLOP; Ampere 2048 bf16/fp16, 1024 tf32, 128 fp32):
#  H100/H200 SXM: 132 SMs; the tensor peaks are at 1830 MHz (132 x 4096 x 1.83 GHz = 989.4 TF; the H100
#        white paper's table 3 gives 1830 MHz as the boost clock for tensor-core work), the fp32/fp64
#        vector peaks at 1980 MHz (132 x 256 x 1.98 GHz = 66.9 TF).
#  H100 PCIe: 114 SMs, tensor peaks at 1620 MHz (114 x 4096 x 1.62 GHz = 756 TF; white paper table 3).
#  A100: 108 SMs at 1410 MHz for every dtype (108 x 2048 x 1.41 GHz = 312 TF; 108 x 128 x 1.41 GHz = 19.5 TF).
_HOPPER_SXM_CLOCKS = dict(reference_clock_mhz={"tf32": 1830.0, "bf16": 1830.0, "fp16": 1830.0, "fp8": 1830.0,
                                               "fp32": 1980.0, "fp64": 1980.0})
_H100_PCIE_CLOCKS = dict(reference_clock_mhz={"tf32": 1620.0, "bf16": 1620.0, "fp16": 1620.0, "fp8": 1620.0})
_A100_CLOCKS = dict(reference_clock_mhz={d: 1410.0 for d in ("fp64", "fp32", "tf32", "bf16", "fp16")})
_NVLINK4 = dict(link_bandwidth_Bps=450e9, link="NVLink 4 (900 GB/s bidirectional per GPU)")
_PCIE5 = dict(link_bandwidth_Bps=64e9, link="PCIe Gen5 x16 (128 GB/s bidirectional)")
_NVLINK3 = dict(link_bandwidth_Bps=300e9, link="NVLink 3 (600 GB/s bidirectional per GPU)")
_A100_PCIE = dict(link_bandwidth_Bps=32e9, link="PCIe Gen4 x16 (64 GB/s bidirectional)")
_H100_SXM_FLOPS = {"fp64": 67 * T, "fp32": 67 * T, "tf32": 494.7 * T, "bf16": 989.4 * T,
                   "fp16": 989.4 * T, "fp8": 1978.9 * T}
_A100_FLOPS = {"fp64": 19.5 * T, "fp32": 19.5 * T, "tf32": 156 * T, "bf16": 312 * T, "fp16": 312 * T}

#  H200 NVL: same datasheet, NVL column: FP64 30, FP32 60, TF32 835, BF16/FP16 1671, FP8 3341
#        TFLOPS *with sparsity*, so dense TF32 417.5, BF16/FP16 835.5, FP8 1670.5; HBM3e 4.8 TB/s,
#        141 GB; max TDP 600 W.
# Names are matched whole (after trimming and folding case): a part that is not listed (an
# "NVIDIA GH200 480GB", a new variant) gets no entry, and its MFU is reported as unknown rather
# than borrowed from a similar name.
SPEC_TABLE: list[tuple[str, DeviceSpec]] = [
    (r"NVIDIA H100 PCIe", DeviceSpec(
        "NVIDIA H100 PCIe",
        {"fp64": 51 * T, "fp32": 51 * T, "tf32": 378 * T, "bf16": 756 * T, "fp16": 756 * T, "fp8": 1513 * T},
        2.0e12, 350, "NVIDIA H100 datasheet, PCIe column", **_PCIE5, **_H100_PCIE_CLOCKS)),
    (r"NVIDIA H100 NVL", DeviceSpec(
        "NVIDIA H100 NVL",
        {"fp64": 60 * T, "fp32": 60 * T, "tf32": 417.5 * T, "bf16": 835 * T, "fp16": 835 * T, "fp8": 1670.5 * T},
        3.9e12, 400, "NVIDIA H100 datasheet, NVL column",
        link_bandwidth_Bps=300e9, link="NVLink bridge (600 GB/s bidirectional)")),
    (r"NVIDIA H100 80GB HBM3|NVIDIA H100 SXM5 80GB|NVIDIA H100",
     DeviceSpec("NVIDIA H100 SXM5", _H100_SXM_FLOPS, 3.35e12, 700, "NVIDIA H100 datasheet, SXM column", **_NVLINK4,
                **_HOPPER_SXM_CLOCKS)),
    (r"NVIDIA H200( SXM)?( 141GB)?( HBM3e)?",
     DeviceSpec("NVIDIA H200 SXM", _H100_SXM_FLOPS, 4.8e12, 700, "NVIDIA H200 datasheet, SXM column", **_NVLINK4,
                **_HOPPER_SXM_CLOCKS)),
    (r"NVIDIA H200 NVL", DeviceSpec(
        "NVIDIA H200 NVL",
        {"fp64": 30 * T, "fp32": 60 * T, "tf32": 417.5 * T, "bf16": 835.5 * T, "fp16": 835.5 * T, "fp8": 1670.5 * T},
        4.8e12, 600, "NVIDIA H200 datasheet, NVL column (sparse figures halved)",
        link_bandwidth_Bps=450e9, link="NVLink bridge (900 GB/s bidirectional)")),
    (r"NVIDIA A100 80GB PCIe", DeviceSpec("NVIDIA A100 80GB PCIe", _A100_FLOPS, 1.935e12, 300,
                                          "NVIDIA A100 datasheet, 80GB PCIe column", **_A100_PCIE, **_A100_CLOCKS)),
    (r"NVIDIA A100-SXM4-80GB", DeviceSpec("NVIDIA A100 80GB SXM", _A100_FLOPS, 2.039e12, 400,
                                          "NVIDIA A100 datasheet, 80GB SXM column", **_NVLINK3, **_A100_CLOCKS)),
    (r"NVIDIA A100-PCIE-40GB", DeviceSpec("NVIDIA A100 40GB PCIe", _A100_FLOPS, 1.555e12, 250,
                                          "NVIDIA A100 datasheet, 40GB PCIe column", **_A100_PCIE, **_A100_CLOCKS)),
    (r"NVIDIA A100-SXM4-40GB", DeviceSpec("NVIDIA A100 40GB SXM", _A100_FLOPS, 1.555e12, 400,
                                          "NVIDIA A100 datasheet, 40GB SXM column", **_NVLINK3, **_A100_CLOCKS)),
    (r"GAUDI ?2|HL-225[A-Z]?", DeviceSpec("Intel Gaudi 2", {"bf16": 432 * T, "fp8": 865 * T}, 2.46e12, 600,
                                          "Intel Gaudi 2 white paper / product brief", link_bandwidth_Bps=262.5e9,
                                          link="21 x 100 GbE RoCE inside an HLS-Gaudi2 server")),
    (r"GAUDI ?3|HL-325[A-Z]?", DeviceSpec("Intel Gaudi 3", {"bf16": 1835 * T, "fp8": 1835 * T}, 3.7e12, 900,
                                          "Intel Gaudi 3 AI Accelerator white paper", link_bandwidth_Bps=525e9,
                                          link="21 x 200 GbE RoCE inside a Gaudi 3 server")),
]


def lookup_spec(device_name: str) -> Optional[DeviceSpec]:
    """The datasheet entry for a device name exactly as the driver reports it, or None if the
    part is not in the table."""
    name = " ".join(device_name.split())
    for pattern, spec in SPEC_TABLE:
        if re.fullmatch(pattern, name, flags=re.IGNORECASE):
            return spec
    return None


@dataclass(frozen=True)
class CpuInfo:
    model: str
    cores: int
    clock_ghz: Optional[float]
    flags: frozenset[str]


def read_cpu_info(cores: Optional[int] = None) -> CpuInfo:
    model, mhz, flags = "unknown CPU", None, frozenset()
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        if m := re.search(r"^model name\s*:\s*(.+)$", text, re.M):
            model = m.group(1).strip()
        if m := re.search(r"^cpu MHz\s*:\s*([\d.]+)$", text, re.M):
            mhz = float(m.group(1))
        if m := re.search(r"^(?:flags|Features)\s*:\s*(.+)$", text, re.M):  # x86 | Arm
            flags = frozenset(m.group(1).split())
    except OSError:
        pass
    try:  # the maximum clock, when the kernel exposes it, beats the momentary "cpu MHz"
        with open("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq") as f:
            mhz = int(f.read()) / 1000.0
    except (OSError, ValueError):
        pass
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return CpuInfo(model, cores, mhz / 1000.0 if mhz else None, flags)


def fp32_flops_per_cycle(flags: frozenset[str]) -> int:
    """Per core, assuming two FMA pipes (true of recent x86 server cores): lanes x 2 (FMA) x 2."""
    if "avx512f" in flags:
        return 16 * 2 * 2
    if "avx2" in flags and "fma" in flags:
        return 8 * 2 * 2
    if "avx" in flags:
        return 8 * 2
    return 4 * 2


def estimate_cpu_spec(info: CpuInfo) -> DeviceSpec:
    notes = [f"{info.cores} cores (threads available to this process)"]
    if info.clock_ghz is None:
        return DeviceSpec(info.model, {}, None, None, "estimate: clock unknown", estimated=True,
                          notes=tuple(notes + ["clock unknown: no peak"]))
    fp32 = info.cores * info.clock_ghz * 1e9 * fp32_flops_per_cycle(info.flags)
    peaks = {"fp32": fp32, "fp64": fp32 / 2}
    # avx512_bf16 (VDPBF16PS) does twice the fp32 FMA rate; AMX tiles are far faster still but
    # their rate is not derivable from flags alone, so bf16 is left unknown on AMX parts.
    if "amx_bf16" in info.flags:
        notes.append("AMX present: bf16 peak not estimated")
    elif "avx512_bf16" in info.flags:
        peaks["bf16"] = 2 * fp32
    notes.append(f"{info.clock_ghz:.2f} GHz x {fp32_flops_per_cycle(info.flags)} fp32 FLOP/cycle/core")
    return DeviceSpec(info.model, peaks, None, None,
                      "estimated from core count x clock x ISA (not a datasheet)", estimated=True,
                      notes=tuple(notes))
