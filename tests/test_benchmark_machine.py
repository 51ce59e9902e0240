"""Every benchmark result says which machine it comes from (benchmarks/common.py)."""
import json
import sys

import torch

from segbench.cpuinfo import read_cpuinfo
from tests.conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import common  # noqa: E402


def test_machine_names_the_cpu_its_kernels_threads_and_gemm_throughput_measured_now():
    info = common.machine(torch.device("cpu"), gemm_size=128)
    assert info["cpu_model"] and info["cpu_class"]
    assert info["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert info["threads"] == torch.get_num_threads()
    rates = info["gemm"]["gflop_per_s"]
    assert rates["fp32"] > 0
    # bf16 is measured only where the hardware has it, and the file says so otherwise
    assert ("bf16" in rates) == info["native_bf16"]
    assert info["native_bf16"] or "no native bf16" in info["gemm"]["note"]
    assert info["cpu_class"] in common.machine_line(info)
    # the family and model numbers too: a hypervisor may show one name ("AMD EPYC") for CPUs of unlike speeds
    assert info["cpu_family_model"] == read_cpuinfo().family_model
    assert info["cpu_family_model"] in common.machine_line(info)


def test_result_files_carry_the_machine_even_when_a_script_forgot_it(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    monkeypatch.setattr(common, "_MACHINES", {("cpu", 2048): common.machine(torch.device("cpu"), gemm_size=128)})
    monkeypatch.setattr(common, "pick_device", lambda requested="auto": torch.device("cpu"))
    common.write_results("example", {"figure": 1.0}, "# example\n")
    written = json.loads((tmp_path / "example.json").read_text())
    assert written["figure"] == 1.0 and written["machine"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert f"Machine: {common.machine_line(written['machine'])}." in (tmp_path / "example.md").read_text()


def test_every_committed_result_file_names_its_machine():
    """The figures the README quotes can be told apart by machine: each result file under benchmarks/results
    records the CPU model, torch's kernels, threads and the GEMM throughput of the run that wrote it."""
    files = sorted((REPO / "benchmarks" / "results").rglob("*.json"))
    assert files
    for path in files:
        info = json.loads(path.read_text()).get("machine")
        where = path.relative_to(REPO)
        assert isinstance(info, dict), f"{where}: no machine description"
        assert info.get("cpu_model") and info.get("cpu_capability") and info.get("threads"), where
        assert info["gemm"]["gflop_per_s"]["fp32"] > 0, where
        markdown = path.with_suffix(".md")
        if markdown.exists():  # the table a reader opens names the machine as well
            text = markdown.read_text()
            assert info["cpu_model"] in text and info["cpu_capability"] in text, markdown.relative_to(REPO)
