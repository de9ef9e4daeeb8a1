"""What the suite believes about a device: CPU matmul features, datasheet entries matched
exactly, Gaudi telemetry opened on the right card."""
import subprocess

import pytest

from accelbench.backends.cpu import CpuBackend, emulated_matmul_dtypes
from accelbench.specs import lookup_spec
from accelbench.telemetry.hlml import HlSmiTelemetry, hlml_handle_for_module


@pytest.mark.parametrize("flags, emulated", [
    ({"avx2", "fma"}, {"bf16", "fp16"}),  # the 2-core EPYC CI machines: no native low precision
    ({"avx512f", "avx512_bf16"}, {"fp16"}),
    ({"avx512f", "amx_bf16", "amx_tile", "avx512_fp16"}, set()),
    ({"fp", "asimd", "bf16", "asimdhp"}, set()),  # Arm with the BF16 and half-precision extensions
])
def test_native_matmul_dtypes_from_cpu_flags(flags, emulated):
    found = emulated_matmul_dtypes(frozenset(flags), "AVX2")
    assert set(found) == emulated
    for why in found.values():
        assert "software-emulated" in why and "AVX2" in why


def test_the_cpu_backend_reads_its_own_flags(monkeypatch):
    from accelbench.backends import cpu
    from accelbench.specs import CpuInfo
    monkeypatch.setattr(cpu, "read_cpu_info", lambda cores=None: CpuInfo("fake", 2, 2.0, frozenset({"avx2"})))
    monkeypatch.setattr(cpu, "cpu_capability", lambda: "AVX2")
    assert set(CpuBackend().emulated_matmul_dtypes()) == {"bf16", "fp16"}


def test_quick_run_on_an_avx2_cpu_skips_bf16_with_the_reason_in_summary_and_report(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from accelbench.backends import cpu
    from accelbench.cli import main
    from accelbench.specs import CpuInfo
    from accelbench.store import load_run
    monkeypatch.setattr(cpu, "read_cpu_info", lambda cores=None: CpuInfo("fake", 2, 2.0, frozenset({"avx2", "fma"})))
    result = CliRunner().invoke(main, ["run", "--backend", "cpu", "--bench", "gemm", "--case", "/square/128",
                                       "--out", str(tmp_path), "--min-time", "0", "--max-time", "0.05"])
    assert result.exit_code == 0, result.output
    assert "software-emulated" in result.output  # the note at the start and the summary
    (run_dir,) = tmp_path.iterdir()
    run = load_run(run_dir)
    status = {c.case_id: (c.status, c.reason) for c in run.cases}
    assert status["fp32/square/128"][0] == "ok"
    assert status["bf16/square/128"][0] == "skipped" and "software-emulated" in status["bf16/square/128"][1]
    assert run.info.emulated_matmul.keys() == {"bf16", "fp16"}
    assert "left out of the quick suite" in (run_dir / "report.html").read_text()


@pytest.mark.parametrize("name, entry", [
    ("NVIDIA H100 80GB HBM3", "NVIDIA H100 SXM5"),
    ("NVIDIA H100 PCIe", "NVIDIA H100 PCIe"),
    ("NVIDIA H100 NVL", "NVIDIA H100 NVL"),
    ("NVIDIA H200", "NVIDIA H200 SXM"),
    ("NVIDIA H200 NVL", "NVIDIA H200 NVL"),
    ("NVIDIA A100-SXM4-80GB", "NVIDIA A100 80GB SXM"),
    ("NVIDIA A100-PCIE-40GB", "NVIDIA A100 40GB PCIe"),
    ("GAUDI2", "Intel Gaudi 2"),
    ("NVIDIA GH200 480GB", None),  # not in the table: unknown, not borrowed from the H200
    ("NVIDIA H200X", None),
    ("NVIDIA H100 PCIe MIG 1g.10gb", None),
])
def test_device_names_match_exactly(name, entry):
    spec = lookup_spec(name)
    assert (spec.name if spec else None) == entry


def test_h200_nvl_has_its_own_lower_peak():
    assert lookup_spec("NVIDIA H200 NVL").peak("bf16") == pytest.approx(835.5e12)
    assert lookup_spec("NVIDIA H200").peak("bf16") == pytest.approx(989.4e12)


def test_hl_smi_fields_are_probed_and_unknown_ones_dropped():
    rows = {0: "0, 3, 96 W, 600 W", 1: "1, 0, 412 W, 600 W"}

    def fake_hl_smi(argv):
        fields = argv[1].split("=", 1)[1].split(",")
        if any(f not in ("index", "module_id", "power.draw", "power.limit") for f in fields):
            raise subprocess.CalledProcessError(2, argv, "unknown field")
        header = {"index": "index", "module_id": "module_id", "power.draw": "power.draw [W]",
                  "power.limit": "power.limit [W]"}
        cols = {"index": 0, "module_id": 1, "power.draw": 2, "power.limit": 3}
        lines = [", ".join(header[f] for f in fields)]
        for text in rows.values():
            cells = text.split(", ")
            lines.append(", ".join(cells[cols[f]] for f in fields))
        return "\n".join(lines)

    reader = HlSmiTelemetry(module_id=3, run=fake_hl_smi)
    assert reader.fields == ("index", "power.draw", "module_id", "power.limit")
    assert reader.power_w() == 96.0  # module 3 is HL-SMI index 0
    assert reader.state().power_limit_w == 600.0 and reader.state().temperature_c is None


def test_hlml_handle_is_the_one_with_the_module_id():
    class FakeHlml:
        modules = [2, 0, 1]

        def hlmlDeviceGetCount(self):
            return 3

        def hlmlDeviceGetHandleByIndex(self, index):
            return f"handle{index}"

        def hlmlDeviceGetModuleID(self, handle):
            return self.modules[int(handle[-1])]

    assert hlml_handle_for_module(FakeHlml(), 1) == "handle2"
    assert hlml_handle_for_module(FakeHlml(), 2) == "handle0"
    with pytest.raises(LookupError):
        hlml_handle_for_module(FakeHlml(), 5)


def test_hlml_reports_the_enforced_limit_where_it_has_one():
    from accelbench.telemetry.hlml import HlmlTelemetry

    class Limits:
        def __getattr__(self, name):  # every other HLML call: "not supported" on this fake
            def unsupported(*args):
                raise RuntimeError("HLML_ERROR_NOT_SUPPORTED")
            return unsupported

        def hlmlDeviceGetPowerManagementDefaultLimit(self, h):
            return 600_000

    class Enforced(Limits):
        def hlmlDeviceGetPowerManagementLimit(self, h):
            return 450_000

    assert HlmlTelemetry(Limits(), None).state().power_limit_w == 600.0
    assert HlmlTelemetry(Enforced(), None).state().power_limit_w == 450.0
