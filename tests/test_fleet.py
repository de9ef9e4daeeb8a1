"""Fleet verdicts (accelbench/fleet): a slow card among its peers, health rules, the baseline file."""
import json
import os
import random
import subprocess
import sys

import pytest

from accelbench.errors import UsageError
from accelbench.fleet.health import Health
from accelbench.fleet.verdicts import Baseline, DeviceResult, exit_code, judge

from conftest import REPO


def node(slow: dict[int, float] = (), devices: int = 8, seed: int = 0) -> list[DeviceResult]:
    """Eight cards whose figures scatter by about 0.5 % (as one model's healthy cards do); `slow`:
    device -> the fraction of its figures it reaches."""
    rng = random.Random(seed)
    slow = dict(slow)
    out = []
    for d in range(devices):
        factor = slow.get(d, 1.0)
        figures = {"gemm_bf16_tflops": 700 * factor * rng.gauss(1, 0.005),
                   "membw_gbps": 3000 * factor * rng.gauss(1, 0.005), "h2d_gbps": 55 * rng.gauss(1, 0.005)}
        out.append(DeviceResult(f"n0/cuda:{d}", "n0", figures,
                                Health(pcie_gen=5, pcie_gen_max=5, pcie_width=16, pcie_width_max=16,
                                       ecc_uncorrected_volatile=0, ecc_uncorrected_aggregate=0, nvlinks_active=18,
                                       power_limit_w=700, power_limit_default_w=700)))
    return out


def test_a_card_8_percent_slow_is_failed_beside_its_peers_and_the_others_pass():
    verdicts = {v.device: v for v in judge(node(slow={5: 0.92}))}
    assert verdicts["n0/cuda:5"].status == "fail"
    assert any("gemm_bf16_tflops" in r and "below its peers' median" in r for r in verdicts["n0/cuda:5"].reasons)
    assert all(v.status == "pass" and not v.reasons for d, v in verdicts.items() if d != "n0/cuda:5"), verdicts
    assert exit_code(list(verdicts.values())) == 1


@pytest.mark.parametrize("seed", range(20))
def test_healthy_cards_scattering_as_healthy_cards_do_all_pass(seed):
    verdicts = judge(node(seed=seed))
    assert all(v.status == "pass" for v in verdicts), [v.reasons for v in verdicts if v.reasons]
    assert exit_code(verdicts) == 0


def test_a_card_4_percent_slow_is_a_warning_not_a_failure():
    verdicts = {v.device: v for v in judge(node(slow={2: 0.96}))}
    assert verdicts["n0/cuda:2"].status == "warn"
    assert exit_code(list(verdicts.values())) == 0


def test_a_narrow_pcie_link_and_an_uncorrected_ecc_error_fail_the_card_with_both_reasons():
    results = node()
    results[3].health.pcie_gen = 4
    results[3].health.ecc_uncorrected_volatile = 1
    verdict = {v.device: v for v in judge(results)}["n0/cuda:3"]
    assert verdict.status == "fail"
    assert any("uncorrected ECC" in r for r in verdict.reasons)
    assert any("PCIe link at Gen4, below the Gen5" in r for r in verdict.reasons)
    assert all(len(r.splitlines()) == 1 for r in verdict.reasons)


def test_a_lost_nvlink_fails_and_a_lowered_power_limit_warns():
    results = node()
    results[1].health.nvlinks_active = 17
    results[6].health.power_limit_w = 500
    verdicts = {v.device: v for v in judge(results)}
    assert verdicts["n0/cuda:1"].status == "fail" and "17 NVLinks active where its peers have 18" in \
        verdicts["n0/cuda:1"].reasons[0]
    assert verdicts["n0/cuda:6"].status == "warn" and "power limit 500 W" in verdicts["n0/cuda:6"].reasons[0]


def test_unreadable_health_says_nothing_rather_than_passing_on_a_guess():
    results = node()
    results[0].health = Health(unreadable=["NVML: not supported"])
    assert {v.device: v for v in judge(results)}["n0/cuda:0"].status == "pass"


def test_a_device_whose_process_died_fails_with_the_reason_and_the_others_are_judged():
    results = node(slow={4: 0.9})
    results[2].failed = "rank 2 exited with signal 9 during gemm"
    verdicts = {v.device: v for v in judge(results)}
    assert verdicts["n0/cuda:2"].status == "fail" and verdicts["n0/cuda:2"].reasons == [results[2].failed]
    assert verdicts["n0/cuda:4"].status == "fail" and verdicts["n0/cuda:0"].status == "pass"


def test_the_baseline_file_round_trips_and_a_card_under_it_fails(tmp_path):
    good = Baseline.from_results(node(), "run-a on n0")
    good.save(tmp_path / "baseline.json")
    again = Baseline.load(tmp_path / "baseline.json")
    assert again == good and again.devices == 8 and set(again.figures) == {"gemm_bf16_tflops", "membw_gbps",
                                                                            "h2d_gbps"}
    # A whole node 6 % slow (a lower power cap on every card): its peers agree, the baseline does not.
    verdicts = judge(node(slow={d: 0.94 for d in range(8)}, seed=1), baseline=again)
    assert all(v.status == "fail" and any("below the baseline's" in r for r in v.reasons) for v in verdicts)


def test_a_file_that_is_not_a_baseline_is_one_clear_error(tmp_path):
    (tmp_path / "b.json").write_text('{"version": 1}')
    with pytest.raises(UsageError, match="not a fleet baseline file"):
        Baseline.load(tmp_path / "b.json")
    with pytest.raises(UsageError, match="not a fleet baseline file"):
        Baseline.load(tmp_path / "missing.json")


def test_nvml_health_facts_map_the_librarys_answers_and_name_what_it_cannot_read():
    import types

    from accelbench.fleet.health import health_findings
    from accelbench.telemetry.nvml import NvmlTelemetry

    def unsupported(*args):
        raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")
    ecc = {(1, 0): 1, (1, 1): 3, (0, 0): 0, (0, 1): 12}  # (uncorrected?, aggregate?) -> count
    nvml = types.SimpleNamespace(
        nvmlDeviceGetTotalEccErrors=lambda h, kind, counter: ecc[(kind, counter)],
        nvmlDeviceGetRemappedRows=lambda h: (2, 1, True, False),
        nvmlDeviceGetCurrPcieLinkGeneration=lambda h: 4, nvmlDeviceGetMaxPcieLinkGeneration=lambda h: 5,
        nvmlDeviceGetCurrPcieLinkWidth=lambda h: 16, nvmlDeviceGetMaxPcieLinkWidth=lambda h: 16,
        nvmlDeviceGetEnforcedPowerLimit=lambda h: 700_000, nvmlDeviceGetPowerManagementDefaultLimit=unsupported,
        nvmlDeviceGetTemperature=lambda h, sensor: 41, nvmlSystemGetDriverVersion=lambda: b"580.159.04",
        nvmlDeviceGetVbiosVersion=lambda h: "96.00", nvmlDeviceGetPersistenceMode=lambda h: 1,
        nvmlDeviceGetMigMode=lambda h: (0, 0))
    health = NvmlTelemetry(nvml, object()).health()
    assert (health.ecc_uncorrected_volatile, health.ecc_uncorrected_aggregate, health.ecc_corrected_aggregate) == \
        (1, 3, 12)
    assert health.row_remap_pending is True and health.row_remap_failed is False and health.rows_remapped_uncorrected == 1
    assert (health.pcie_gen, health.pcie_gen_max, health.power_limit_w) == (4, 5, 700.0)
    assert health.power_limit_default_w is None and any("default power limit" in u for u in health.unreadable)
    assert health.nvlinks_active is None and health.driver == "580.159.04" and health.mig_mode is False
    reasons = [f.reason for f in health_findings(health) if f.severity == "fail"]
    assert len(reasons) == 3 and "uncorrected ECC" in reasons[0] and "pending" in reasons[1] and "Gen4" in reasons[2]


# --- `bench fleet` on the CPU: N processes share it (the machinery, not the CPU, is under test) ---

SELECTION = ("--bench", "faulty-gemm,membw", "--case", "fp32/square/512", "--case", "torch/triad/fp32/64MiB")


def fleet(tmp_path, *args, **env):
    environment = dict(os.environ, ACCELBENCH_PLUGINS=str(REPO / "tests" / "helpers" / "fleet_faults"), **env)
    return subprocess.run([sys.executable, "-m", "accelbench", "fleet", "--backend", "cpu", "--quick", "--out",
                           str(tmp_path), *args], capture_output=True, text=True, cwd=REPO, env=environment,
                          timeout=300)


def verdicts_of(tmp_path):
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir() and "fleet" in p.name]
    data = json.loads((folder / "fleet.json").read_text())
    return {d["device"].rsplit("/", 1)[1]: d for d in data["devices"]}


def test_a_device_whose_process_dies_and_one_that_hangs_fail_and_the_other_is_judged(tmp_path):
    out = fleet(tmp_path, "--devices", "3", "--timeout", "45", *SELECTION, FLEET_FAULT_DIE="1", FLEET_FAULT_HANG="2")
    assert out.returncode == 1, out.stdout[-2000:] + out.stderr[-2000:]
    devices = verdicts_of(tmp_path)
    assert devices["device0"]["verdict"]["status"] == "pass" and len(devices["device0"]["figures"]) == 2
    assert devices["device1"]["verdict"]["status"] == "fail" and "died (SIGKILL)" in devices["device1"]["failed"]
    assert devices["device2"]["verdict"]["status"] == "fail" and "no result within 45 s (hung)" in \
        devices["device2"]["failed"]
    assert "1 pass, 0 warn, 2 fail" in out.stdout + out.stderr


def test_a_saved_baseline_is_judged_against_by_a_later_run(tmp_path):
    baseline = tmp_path / "baseline.json"
    first = fleet(tmp_path / "a", "--devices", "2", *SELECTION, "--save-baseline", str(baseline))
    assert first.returncode == 0 and baseline.is_file(), first.stdout[-2000:] + first.stderr[-2000:]
    saved = Baseline.load(baseline)
    assert set(saved.figures) == {"faulty-gemm fp32/square/512 tflops", "membw torch/triad/fp32/64MiB gbps"}
    # A shared 2-core VM moves these figures by 10 % from run to run, so the later run is judged against
    # the baseline scaled well clear of that: half of it passes, twice it fails every device on every figure.
    for scale, code in ((0.5, 0), (2.0, 1)):
        edited = tmp_path / f"baseline-x{scale}.json"
        Baseline({k: v * scale for k, v in saved.figures.items()}, saved.source, saved.devices).save(edited)
        later = fleet(tmp_path / f"b{scale}", "--devices", "2", *SELECTION, "--baseline", str(edited))
        assert later.returncode == code, later.stdout[-2000:] + later.stderr[-2000:]
        for device in verdicts_of(tmp_path / f"b{scale}").values():
            below = [r for r in device["verdict"]["reasons"] if "below the baseline's" in r]
            assert len(below) == (2 if code else 0), device["verdict"]["reasons"]


def test_the_acceptance_selection_ends_with_an_all_reduce_over_the_node(tmp_path):
    """The default selection on 2 CPU 'devices', then the node's all-reduce (2 gloo ranks): its bus
    bandwidth is a figure of each device (equal within the node: judged across nodes), and the
    peer-to-peer copies say why they were not measured."""
    out = fleet(tmp_path, "--devices", "2")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    devices = verdicts_of(tmp_path)
    node = [{k: v for k, v in d["figures"].items() if k.startswith("node collectives all_reduce/fp32/1MiB")}
            for d in devices.values()]
    assert len(node[0]) == 1 and node[0] == node[1] and list(node[0].values())[0] > 0
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir() and "fleet" in p.name]
    checks = json.loads((folder / "fleet.json").read_text())["node_checks"]
    assert checks["failures"] == [] and any("peer-to-peer copies: not measured on cpu" in n for n in checks["notes"])
    assert "peer-to-peer copies: not measured on cpu" in " ".join((out.stdout + out.stderr).split())


@pytest.mark.parametrize("args", [("--devices", "two"), ("--devices", "0,0"), ("--bench", "gemm"),
                                  ("--baseline", "/nonexistent/baseline.json")])
def test_bad_fleet_usage_is_one_line_and_exit_2(tmp_path, args):
    out = fleet(tmp_path, *args)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_the_fleet_folders_of_two_nodes_are_judged_together_as_one_cluster(tmp_path):
    from dataclasses import asdict
    for name, slow in (("a", {}), ("b", {2: 0.92})):
        devices = node(slow=slow, devices=4, seed=ord(name))
        for d in devices:
            d.node, d.device = name, f"{name}/cuda:{d.device.rsplit(':', 1)[1]}"
        (tmp_path / name).mkdir()
        (tmp_path / name / "fleet.json").write_text(json.dumps({"devices": [asdict(d) for d in devices]}))
    out = subprocess.run([sys.executable, "-m", "accelbench", "fleet", "--judge", str(tmp_path / "a"), "--judge",
                          str(tmp_path / "b"), "--out", str(tmp_path / "out")], capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    assert out.returncode == 1, out.stdout[-2000:] + out.stderr[-2000:]
    judged = json.loads(next((tmp_path / "out").glob("*-fleet-judged/fleet.json")).read_text())
    devices = {d["device"]: d["verdict"] for d in judged["devices"]}
    assert devices["b/cuda:2"]["status"] == "fail" and "8 devices" in devices["b/cuda:2"]["reasons"][0]
    assert all(v["status"] == "pass" for k, v in devices.items() if k != "b/cuda:2")


def test_the_committed_h100_fleet_folder_reads_back():
    from accelbench.fleet.verdicts import DeviceResult
    data = json.loads((REPO / "results" / "20261207T230528Z-fleet-cuda-vm" / "fleet.json").read_text())
    (device,) = [DeviceResult.from_json(d) for d in data["devices"]]
    assert device.health.pcie_gen == 5 and device.figures["gemm bf16/square/8192 tflops"] == pytest.approx(268.6, abs=0.1)


def test_the_fleet_page_draws_a_strip_per_figure_with_the_slow_card_red(tmp_path):
    import base64
    import io
    from accelbench.fleet.report import COLOURS, strip_plot, write_page
    devices = node(slow={5: 0.92})
    verdicts = judge(devices)
    baseline = Baseline.from_results(node(), "known-good")
    page = write_page(tmp_path, devices, verdicts, baseline).read_text()
    assert page.count("<img") == 3 and "fail" in page and "below its peers" in page
    from PIL import Image
    png = strip_plot("gemm_bf16_tflops", devices, {v.device: v for v in verdicts}, baseline)
    image = Image.open(io.BytesIO(base64.b64decode(png))).convert("RGB")
    pixels = [image.getpixel((x, y)) for x in range(image.width) for y in range(image.height)]
    red = tuple(int(COLOURS["fail"][i:i + 2], 16) for i in (1, 3, 5))
    green = tuple(int(COLOURS["pass"][i:i + 2], 16) for i in (1, 3, 5))
    assert sum(p == red for p in pixels) > 20 and sum(p == green for p in pixels) > 7 * 20  # one red dot, seven green
