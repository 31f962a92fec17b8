"""Price catalog: shipped entries carry sources, config overrides them, bad names are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from frugalml.errors import BadInput
from frugalml.measure import prices


def test_every_catalog_entry_names_its_source_and_date() -> None:
    cat = prices.catalog()
    assert len(cat["instances"]) >= 10 and len(cat["regions"]) >= 8
    for section in ("instances", "regions"):
        for name, entry in cat[section].items():
            assert entry.get("source"), f"{section}.{name} has no source"
            assert entry.get("checked"), f"{section}.{name} has no date"
    gpu_instances = [e for e in cat["instances"].values() if e.get("gpus")]
    spot = [e for e in cat["instances"].values() if "spot_usd_per_hour" in e]
    assert gpu_instances and spot


def test_cloud_instance_is_priced_by_the_hour() -> None:
    price = prices.resolve("aws/g5.xlarge")
    assert price.region == "us-east-1"  # the instance's own region by default
    inst, energy, total, co2 = price.cost(wall_s=3600, energy_j=3.6e6)
    assert inst == pytest.approx(1.006)
    assert energy == pytest.approx(price.usd_per_kwh)
    assert total == inst  # electricity is inside a cloud instance's price
    assert co2 == pytest.approx(price.g_co2_per_kwh)


def test_spot_and_local_pricing() -> None:
    assert (
        prices.resolve("aws/g5.xlarge:spot").usd_per_hour
        < prices.resolve("aws/g5.xlarge").usd_per_hour
    )
    local = prices.resolve("local", "fr")
    _, energy, total, co2 = local.cost(wall_s=10, energy_j=3.6e6)
    assert total == energy == pytest.approx(0.20) and co2 == pytest.approx(56)


def test_auto_prices_this_machine_by_vcpus_and_gpus() -> None:
    cpu_only = prices.resolve(None, None, vcpus=4, gpu_names=())
    with_gpu = prices.resolve(None, None, vcpus=4, gpu_names=("NVIDIA H100 80GB HBM3",))
    assert cpu_only.instance == "auto" and "4 vCPU" in cpu_only.instance_source
    assert with_gpu.usd_per_hour == pytest.approx(cpu_only.usd_per_hour + 6.88)
    assert cpu_only.region == "world"


@pytest.mark.parametrize(
    "instance, region, message",
    [
        ("aws/nope.large", None, "unknown instance type"),
        ("aws/c7i.large", "mars-1", "unknown region"),
        ("aws/c7i.large:reserved", None, "unknown price variant"),
        ("local:spot", None, "no spot price"),
    ],
)
def test_unknown_names_are_refused(instance: str, region: str | None, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        prices.resolve(instance, region)


def test_user_config_overrides_and_adds(
    _isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _isolated_home / "config.toml"
    cfg.write_text(
        'instance = "my-rack"\nregion = "home"\n'
        '[instances."my-rack"]\nusd_per_hour = 1.25\n'
        '[instances."aws/c7i.large"]\nusd_per_hour = 0.05\n'
        '[regions."home"]\nusd_per_kwh = 0.31\ng_co2_per_kwh = 100\n'
    )
    monkeypatch.setenv("FRUGAL_CONFIG", str(cfg))
    default = prices.resolve()
    assert (default.instance, default.usd_per_hour, default.region) == ("my-rack", 1.25, "home")
    assert default.instance_source == "user config"
    assert prices.resolve("aws/c7i.large").usd_per_hour == 0.05


def test_broken_config_is_a_clear_error(
    _isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _isolated_home / "config.toml"
    cfg.write_text("instance = [unterminated")
    monkeypatch.setenv("FRUGAL_CONFIG", str(cfg))
    with pytest.raises(BadInput, match="cannot read config file"):
        prices.resolve()


def test_cpu_power_by_model() -> None:
    assert prices.cpu_watts("AMD EPYC 9654 96-Core Processor") == 1.875
    assert (
        prices.cpu_watts("Some Unknown CPU") == prices.catalog()["defaults"]["cpu_w_per_busy_core"]
    )


def test_catalog_covers_inference_and_training_hardware() -> None:
    cat = prices.catalog()
    chips = cat["chips"]
    for gpu in ("L4", "A10G", "L40S", "A100-40GB", "A100-80GB", "H100-SXM", "H200-SXM"):
        assert gpu in chips, gpu
    assert any(c.get("kind") == "cpu" and c.get("cpu_flags") for c in chips.values())  # AMX
    for name, chip in chips.items():
        for key in ("bf16_tflops", "int8_tops", "mem_bw_gbs", "source", "checked"):
            assert chip.get(key), f"chips.{name} has no {key}"
        if chip["kind"] == "gpu":
            assert chip.get("memory_gib"), name
    providers = {e.get("provider") for e in cat["instances"].values()}
    assert {"aws", "gcp", "azure", "lambda"} <= providers
    for name, entry in cat["instances"].items():
        if entry.get("chip"):
            assert entry["chip"] in chips, f"instances.{name} names an unknown chip"
    used = {e.get("chip") for e in cat["instances"].values()}
    assert {"L4", "A10G", "L40S", "A100-40GB", "H100-SXM", "H200-SXM"} <= used


def test_catalog_age_is_the_oldest_month_used() -> None:
    from datetime import date

    entries = [{"checked": "2026-03"}, {"checked": "2025-06"}, {"source": "user config"}]
    age = prices.catalog_age(entries, today=date(2026, 12, 1))
    assert age == "prices checked 2025-06 (18 months ago)"
    assert prices.catalog_age([{"checked": "2026-11"}], today=date(2026, 12, 1)).endswith(
        "(1 month ago)"
    )


def test_user_config_adds_a_chip(_isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _isolated_home / "config.toml"
    cfg.write_text(
        '[chips."my-npu"]\nkind = "gpu"\nbf16_tflops = 1.0\nint8_tops = 2.0\nmem_bw_gbs = 3.0\n'
        '[chips."L4"]\nmem_bw_gbs = 299.0\n'
    )
    monkeypatch.setenv("FRUGAL_CONFIG", str(cfg))
    chips = prices.catalog()["chips"]
    assert chips["my-npu"]["source"] == "user config"
    assert chips["L4"]["mem_bw_gbs"] == 299.0 and chips["L4"]["bf16_tflops"] == 121.0


def test_price_age_names_the_entries_that_priced_a_figure(
    _isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import date

    today = date(2026, 12, 1)
    cfg = _isolated_home / "config.toml"
    cfg.write_text('[instances."my/box"]\nusd_per_hour = 1.0\nchecked = "2026-10"\n')
    monkeypatch.setenv("FRUGAL_CONFIG", str(cfg))
    assert prices.price_age(["my/box"], today=today) == "prices checked 2026-10 (2 months ago)"
    # "auto" is priced at the shipped catalog's per-vCPU rate: dated by the catalog's version
    version = prices.catalog()["meta"]["catalog_version"]
    assert prices.price_age(["my/box", "auto", "unknown/x"], today=today).startswith(
        f"prices checked {version} ("
    )
    assert prices.price_age(["my/box:spot"], ["world"], today=today).startswith(
        f"prices checked {prices.catalog()['regions']['world']['checked']}"
    )
    # a rate the user set is theirs: undated
    cfg.write_text("[defaults]\ncpu_usd_per_vcpu_hour = 0.05\n")
    assert prices.price_age(["auto"], today=today) == "prices: user config (no date)"
    note = prices.price_note(["auto", None, "auto"])
    assert note == "$ figures at the catalog's prices for auto: prices: user config (no date)."
    assert prices.price_note([None, "gone/x"]) == ""  # nothing the catalog priced: no note
