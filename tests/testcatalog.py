"""A small price catalog for the placement tests: two chips with round figures, so every
expected cost in those tests can be worked out by hand (config-file format of
``frugal prices``; each test adds its instances)."""

TEST_CHIPS = """
[defaults]
place_overhead_ms_cpu = 10.0

[chips."test-cpu"]
kind = "cpu"
fp32_tflops = 0.1
bf16_tflops = 0.1
int8_tops = 0.4
mem_bw_gbs = 10.0
cpu_match = ["TestCPU 9000"]
checked = "2026-11"

[chips."test-gpu"]
kind = "gpu"
fp32_tflops = 10.0
bf16_tflops = 100.0
int8_tops = 200.0
mem_bw_gbs = 100.0
memory_gib = 16
checked = "2026-11"
"""
