"""The CPU description behind bf16 choices, provenance and benchmark records (segbench.cpuinfo)."""
from segbench.cpuinfo import parse_cpuinfo, read_cpuinfo

X86 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC
flags\t\t: fpu sse2 avx2 avx512f avx512_bf16

processor\t: 1
vendor_id\t: AuthenticAMD
cpu family\t: 26
model\t\t: 2
model name\t: Other
flags\t\t: fpu
"""

ARM = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes
CPU implementer\t: 0x41

processor\t: 1
Features\t: fp
"""


def test_the_first_processor_names_the_cpu_with_its_family_and_model():
    info = parse_cpuinfo(X86, fallback_model="x86_64")
    assert info.model == "AMD EPYC" and info.family_model == "family 25 model 17"
    assert info.label == "AMD EPYC (family 25 model 17)"
    assert {"avx2", "avx512f", "avx512_bf16"} <= info.flags and "fpu" in info.flags


def test_an_arm_cpu_without_a_name_or_family_keeps_its_features():
    info = parse_cpuinfo(ARM, fallback_model="aarch64")
    assert info.model == "aarch64" and info.family_model == "" and info.label == "aarch64"
    assert "asimd" in info.flags


def test_this_machine_is_described():
    info = read_cpuinfo()
    assert info.model and info.label.startswith(info.model)
