"""The bf16 timing behind ``precision: auto``: measured once per machine, remembered in the cache, shared by
processes starting together, and never a reason for a run to fail."""
import json
import os
import subprocess
import sys
import textwrap

import attrs
import pytest

from segbench.engine import cpu_speeds as module
from segbench.engine.cpu_speeds import CACHE_FILE, CpuSpeeds, cpu_speeds, machine_key
from segbench.engine.device import CpuClass

CPU = CpuClass(model="AMD EPYC 9R14", capability="AVX512", flags=("avx2", "avx512f", "avx512_bf16"),
               native_bf16=True)


@pytest.fixture
def timings(monkeypatch, tmp_path):
    """A fresh cache and a fake measurement that counts its calls."""
    monkeypatch.setenv("SEGBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(module, "_measured_here", {})
    calls = []

    def fake_measure():
        calls.append(1)
        return CpuSpeeds(fp32_s=0.03, bf16_s=0.02, measured_at="now")

    monkeypatch.setattr(module, "measure", fake_measure)
    return calls


def test_measured_once_then_read_back_by_the_next_process(timings, monkeypatch, tmp_path, capsys):
    first = cpu_speeds(CPU)
    assert first.bf16_speedup == pytest.approx(1.5)
    message = capsys.readouterr().err
    assert "timed fp32 and bf16 training on this CPU once" in message and "bf16 1.50x the speed of fp32" in message
    assert f"kept in {tmp_path / 'cache' / CACHE_FILE}" in message
    monkeypatch.setattr(module, "_measured_here", {})  # as a new process would start
    assert cpu_speeds(CPU) == first
    assert len(timings) == 1
    stored = json.loads((tmp_path / "cache" / CACHE_FILE).read_text())
    assert list(stored) == [machine_key(CPU)]


def test_another_cpu_or_kernel_limit_is_timed_on_its_own(timings, monkeypatch):
    cpu_speeds(CPU)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")
    cpu_speeds(CPU)
    cpu_speeds(CpuClass(model="Intel Xeon", capability="AVX512", flags=CPU.flags, native_bf16=True))
    assert len(timings) == 3


def test_two_generations_behind_one_shortened_name_are_timed_apart(timings):
    """Hypervisors show "AMD EPYC" for several generations; a cache in a home folder shared by such machines
    must not hand one generation's bf16 timing to another."""
    zen4 = CpuClass(model="AMD EPYC", capability="AVX512", flags=CPU.flags, native_bf16=True,
                    family_model="family 25 model 17")
    cpu_speeds(zen4)
    cpu_speeds(zen4)
    cpu_speeds(attrs.evolve(zen4, family_model="family 26 model 2"))
    assert len(timings) == 2


@pytest.mark.parametrize("damage", ["{not json", "[1, 2]", '{"%s": {"fp32_s": -1, "bf16_s": 0.1}}',
                                    '{"%s": {"fp32": 1}}'])
def test_a_damaged_cache_is_measured_again_and_repaired(timings, tmp_path, damage):
    path = tmp_path / "cache" / CACHE_FILE
    path.parent.mkdir(parents=True)
    path.write_text(damage.replace("%s", machine_key(CPU)) if "%s" in damage else damage)
    assert cpu_speeds(CPU).fp32_s == 0.03
    assert len(timings) == 1
    assert json.loads(path.read_text())[machine_key(CPU)]["fp32_s"] == 0.03


def test_other_machines_timings_are_kept(timings, tmp_path):
    path = tmp_path / "cache" / CACHE_FILE
    path.parent.mkdir(parents=True)
    other = {"fp32_s": 0.5, "bf16_s": 0.25, "measured_at": "then"}
    path.write_text(json.dumps({"another machine": other}))
    cpu_speeds(CPU)
    assert json.loads(path.read_text())["another machine"] == other


def test_a_cache_that_cannot_be_written_costs_a_measurement_not_the_run(timings, monkeypatch, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("SEGBENCH_CACHE", str(blocker / "cache"))  # below a file: no folder can be made
    assert cpu_speeds(CPU).bf16_speedup == pytest.approx(1.5)
    assert f"{blocker / 'cache' / CACHE_FILE} cannot be written" in capsys.readouterr().err


def test_processes_starting_together_measure_once(tmp_path):
    """The ranks of a torchrun job: the first times the CPU, the others wait for its timings and read them."""
    log = tmp_path / "measurements"
    script = textwrap.dedent(f"""
        import time
        from segbench.engine import cpu_speeds as module
        from segbench.engine.device import CpuClass

        def slow_measure():
            with open({str(log)!r}, "a") as handle:
                handle.write("measured\\n")
            time.sleep(1.0)
            return module.CpuSpeeds(fp32_s=0.03, bf16_s=0.02)

        module.measure = slow_measure
        cpu = CpuClass(model="m", capability="AVX512", flags=("avx512_bf16",), native_bf16=True)
        print(module.cpu_speeds(cpu).bf16_speedup)
    """)
    env = {**os.environ, "SEGBENCH_CACHE": str(tmp_path / "cache")}
    processes = [subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
                 for _ in range(3)]
    outputs = [process.communicate(timeout=120)[0] for process in processes]
    assert all(process.returncode == 0 for process in processes)
    assert [float(out) for out in outputs] == [pytest.approx(1.5)] * 3
    assert log.read_text() == "measured\n"
