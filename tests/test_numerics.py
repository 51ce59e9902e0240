"""The one rule for precision and memory format: ``auto`` picks the faster choice on each CPU, timing bf16 where
the flags alone cannot tell."""
import pytest
import torch

from segbench.engine import cpu_speeds as speeds_module
from segbench.engine.cpu_speeds import CpuSpeeds, cpu_speeds
from segbench.engine.device import BF16_MARGIN, CpuClass, Numerics, choose_numerics, describe_cpu, native_bf16
from segbench.errors import SegbenchError

CPU = torch.device("cpu")
AVX2_EPYC = CpuClass(model="AMD EPYC 7571", capability="AVX2", flags=("avx2",), native_bf16=False)
SKYLAKE = CpuClass(model="Intel Xeon Gold 6148", capability="AVX512", flags=("avx2", "avx512f"), native_bf16=False)
ZEN4 = CpuClass(model="AMD EPYC 9R14", capability="AVX512", flags=("avx2", "avx512f", "avx512_bf16"),
                native_bf16=True)
BF16_FAST = CpuSpeeds(fp32_s=0.030, bf16_s=0.020)  # the EPYC of benchmarks/results/amd_epyc
BF16_SLOW = CpuSpeeds(fp32_s=0.040, bf16_s=0.048)  # an Intel Xeon whose hypervisor hides AMX


@pytest.fixture
def no_timing(monkeypatch):
    """Fails a test that would time this machine."""
    def refuse(_cpu):
        raise AssertionError("timed the CPU where the rule needs no timing")

    monkeypatch.setattr("segbench.engine.device.cpu_speeds", refuse)


@pytest.mark.parametrize(("cpu", "speeds", "expected"), [
    (AVX2_EPYC, None, Numerics("fp32", False)),  # AVX2 kernels: contiguous fp32 was as fast (DeepLabV3+ 1.05x)
    (SKYLAKE, None, Numerics("fp32", True)),  # AVX-512 kernels: fp32 channels-last 1.1-1.4x contiguous
    (ZEN4, BF16_FAST, Numerics("bf16", True)),
    (ZEN4, BF16_SLOW, Numerics("fp32", True)),
    (ZEN4, CpuSpeeds(fp32_s=0.0105, bf16_s=0.010), Numerics("fp32", True)),  # 1.05x: within timing noise
])
def test_auto_trains_in_bf16_only_where_it_is_native_and_timed_faster(cpu, speeds, expected, no_timing):
    assert choose_numerics("auto", None, CPU, cpu=cpu, speeds=speeds) == expected


def test_the_recipe_overrides_auto(no_timing):
    assert choose_numerics("bf16", None, CPU, cpu=AVX2_EPYC) == Numerics("bf16", True)
    assert choose_numerics("auto", True, CPU, cpu=AVX2_EPYC) == Numerics("fp32", True)
    assert choose_numerics("fp32", None, CPU, cpu=ZEN4) == Numerics("fp32", True)
    assert choose_numerics("auto", False, CPU, cpu=ZEN4, speeds=BF16_FAST) == Numerics("bf16", False)
    with pytest.raises(SegbenchError, match="fp16 needs a CUDA device"):
        choose_numerics("fp16", None, CPU, cpu=ZEN4)


@pytest.mark.parametrize(("capability", "flags", "env", "expected"), [
    ("AVX512", {"avx512f", "avx512_bf16"}, {}, True),
    ("AVX512", {"avx512f", "amx_bf16"}, {}, True),
    ("AVX512", {"avx512f"}, {}, False),  # AVX-512 without bf16: oneDNN would emulate it
    ("AVX2", {"avx2", "avx512_bf16"}, {}, False),  # ATEN_CPU_CAPABILITY=avx2: torch runs AVX2 kernels
    ("AVX512", {"avx512_bf16", "amx_bf16"}, {"ONEDNN_MAX_CPU_ISA": "AVX2"}, False),  # emulating an AVX2 machine
    ("AVX512", {"avx512_bf16"}, {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX"}, True),
    ("DEFAULT", {"asimd", "bf16"}, {}, False),  # ARM: not measured, fp32
])
def test_native_bf16_needs_the_instructions_and_torch_allowed_to_use_them(capability, flags, env, expected):
    assert native_bf16(capability, flags, env) is expected


def test_this_machine_is_described_as_torch_sees_it_and_auto_follows_its_timing():
    cpu = describe_cpu()
    assert cpu.capability == torch.backends.cpu.get_cpu_capability()
    assert cpu.model
    fast_bf16 = cpu.native_bf16 and cpu_speeds(cpu).bf16_speedup >= BF16_MARGIN
    assert choose_numerics("auto", None, CPU).precision == ("bf16" if fast_bf16 else "fp32")


def test_a_timing_leaves_the_runs_random_streams_and_runs_under_no_grad():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    with torch.no_grad():  # as around an evaluation
        speeds = speeds_module.measure()
    assert torch.equal(torch.rand(3), expected)
    assert 0 < speeds.fp32_s < 10 and 0 < speeds.bf16_s < 100
