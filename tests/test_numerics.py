"""The one rule for precision and memory format: ``auto`` picks the faster choice for each CPU class."""
import pytest
import torch

from segbench.engine.device import CpuClass, Numerics, choose_numerics, describe_cpu, native_bf16
from segbench.errors import SegbenchError

CPU = torch.device("cpu")
AVX2_EPYC = CpuClass(model="AMD EPYC 7571", capability="AVX2", flags=("avx2",), native_bf16=False)
SKYLAKE = CpuClass(model="Intel Xeon Gold 6148", capability="AVX512", flags=("avx2", "avx512f"), native_bf16=False)
SAPPHIRE_RAPIDS = CpuClass(model="Intel Xeon Platinum 8481C", capability="AVX512",
                           flags=("avx2", "avx512f", "avx512_bf16", "amx_bf16"), native_bf16=True)


@pytest.mark.parametrize(("cpu", "expected"), [
    (AVX2_EPYC, Numerics("fp32", False)),
    (SKYLAKE, Numerics("fp32", False)),
    (SAPPHIRE_RAPIDS, Numerics("bf16", True)),
])
def test_auto_is_bf16_channels_last_only_on_cpus_with_native_bf16(cpu, expected):
    assert choose_numerics("auto", None, CPU, cpu=cpu) == expected


def test_the_recipe_overrides_auto():
    assert choose_numerics("bf16", None, CPU, cpu=AVX2_EPYC) == Numerics("bf16", True)
    assert choose_numerics("auto", True, CPU, cpu=AVX2_EPYC) == Numerics("fp32", True)
    assert choose_numerics("auto", False, CPU, cpu=SAPPHIRE_RAPIDS) == Numerics("bf16", False)
    with pytest.raises(SegbenchError, match="fp16 needs a CUDA device"):
        choose_numerics("fp16", None, CPU, cpu=SAPPHIRE_RAPIDS)


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


def test_this_machine_is_described_as_torch_sees_it():
    cpu = describe_cpu()
    assert cpu.capability == torch.backends.cpu.get_cpu_capability()
    assert cpu.model
    assert choose_numerics("auto", None, CPU).precision == ("bf16" if cpu.native_bf16 else "fp32")
