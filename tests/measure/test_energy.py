"""Energy meters. NVML is faked here because this machine has no GPU (the real counter is
tested by the gpu-marked test at the bottom); RAPL is read from a sysfs-shaped folder."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from frugalml.measure import energy


def _fake_rapl(root: Path, uj: int, max_uj: int = 1_000_000) -> Path:
    zone = root / "intel-rapl:0"
    zone.mkdir(parents=True, exist_ok=True)
    (zone / "name").write_text("package-0\n")
    (zone / "max_energy_range_uj").write_text(f"{max_uj}\n")
    (zone / "energy_uj").write_text(f"{uj}\n")
    sub = root / "intel-rapl:0:0"  # a subzone (core): must not be double counted
    sub.mkdir(exist_ok=True)
    (sub / "name").write_text("core\n")
    (sub / "max_energy_range_uj").write_text(f"{max_uj}\n")
    (sub / "energy_uj").write_text("5\n")
    return zone


def test_rapl_reads_package_energy_and_survives_wrap(tmp_path: Path) -> None:
    zone = _fake_rapl(tmp_path, 900_000)
    meter = energy.RaplMeter(tmp_path)
    assert meter.read_j() == 0.0
    (zone / "energy_uj").write_text("950000\n")
    assert meter.read_j() == pytest.approx(0.05)
    (zone / "energy_uj").write_text("20000\n")  # wrapped past 1_000_000
    assert meter.read_j() == pytest.approx(0.05 + 0.07)


def test_rapl_absent_means_no_meter(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        energy.RaplMeter(tmp_path / "missing")


class _FakeNvml(types.ModuleType):
    """Stands in for pynvml on a machine with no NVIDIA driver (fake hardware)."""

    def __init__(self) -> None:
        super().__init__("pynvml")
        self.mj = [1_000_000, 2_000_000]

    def nvmlInit(self) -> None: ...
    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetName(self, h: int) -> str:
        return "NVIDIA H100 80GB HBM3"

    def nvmlSystemGetDriverVersion(self) -> str:
        return "580.1"

    def nvmlDeviceGetTotalEnergyConsumption(self, h: int) -> int:
        return self.mj[h]


@pytest.fixture
def fake_nvml(monkeypatch: pytest.MonkeyPatch) -> _FakeNvml:
    fake = _FakeNvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    energy._nvml.cache_clear()
    yield fake
    energy._nvml.cache_clear()


def test_nvml_meter_sums_gpus_in_joules(fake_nvml: _FakeNvml) -> None:
    meter = energy.NvmlMeter()
    assert meter.read_j() == pytest.approx(3000.0)
    fake_nvml.mj[1] += 500_000
    assert meter.read_j() == pytest.approx(3500.0)
    assert energy.nvml_devices().names == ("NVIDIA H100 80GB HBM3",) * 2


def test_session_labels_reading_and_estimate(
    fake_nvml: _FakeNvml, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(energy, "RAPL_ROOT", Path("/nonexistent"))
    monkeypatch.setattr(energy, "cpu_meter", lambda: None)
    session = energy.EnergySession(cpu_w_per_busy_core=4.0, gpu_w=300.0)
    session.start()
    fake_nvml.mj[0] += 250_000
    parts = session.stop(cpu_s=2.0, device_s=1.0)
    by = {p.domain: p for p in parts}
    assert by["gpu"].source == "nvml" and by["gpu"].energy_j == pytest.approx(250.0)
    assert by["cpu"].source == "estimate" and by["cpu"].energy_j == pytest.approx(8.0)
    assert energy.overall_source(parts) == "nvml"


def test_without_counters_everything_is_an_estimate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(energy, "cpu_meter", lambda: None)
    monkeypatch.setattr(energy, "gpu_meter", lambda indices=None: None)
    session = energy.EnergySession(cpu_w_per_busy_core=3.5, gpu_w=300.0)
    session.start()
    parts = session.stop(cpu_s=10.0, device_s=2.0)
    assert {p.source for p in parts} == {"estimate"}
    assert sum(p.energy_j for p in parts) == pytest.approx(35.0 + 600.0)
    assert energy.overall_source(parts) == "estimate"


@pytest.mark.gpu
def test_real_nvml_counter_moves_under_load() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    meter = energy.NvmlMeter()
    before = meter.read_j()
    x = torch.randn(8192, 8192, device="cuda")
    for _ in range(50):
        x = x @ x
        x = x / x.norm()
    torch.cuda.synchronize()
    assert meter.read_j() > before
