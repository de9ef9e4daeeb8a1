"""NVML's health facts on a real GPU (`python -m pytest -m gpu`): readable, and a lent card in
service passes the health rules."""
from accelbench.backends.cuda import CudaBackend
from accelbench.fleet.health import health_findings


def test_nvml_reads_the_health_facts_of_a_gpu_and_a_card_in_service_passes():
    import torch
    telemetry = CudaBackend(0).telemetry()
    a = torch.randn(8192, 8192, device="cuda")
    for _ in range(20):  # under load: an idle link lowers its PCIe generation
        a = a @ a.T / 8192
    health = telemetry.health()
    torch.cuda.synchronize()
    assert health.pcie_gen_max and health.pcie_width_max and health.power_limit_w and health.driver, health
    assert health.ecc_uncorrected_aggregate is not None or any("ECC" in u for u in health.unreadable), health
    assert not [f for f in health_findings(health) if f.severity == "fail"], health
