"""``segbench benchmark``: what is timed, what the record holds, and the columns ``compare`` makes of it."""
import itertools
import json

import pytest
import torch

from segbench.engine.device import choose_numerics
from segbench.report.compare import collect_runs, csv_table, markdown_tables
from segbench.report.latency import benchmark, read_latency
from segbench.report.timing import time_calls


class FakeClock:
    """A clock that advances by the durations given, one per call of the timed function."""

    def __init__(self, durations):
        self.now, self.durations = 0.0, iter(durations)

    def __call__(self):
        return self.now

    def work(self):
        self.now += next(self.durations)


def test_time_calls_reports_percentiles_of_the_timed_runs_after_the_warm_up():
    clock = FakeClock([9.0, 9.0] + [0.01 * i for i in range(1, 11)])  # two slow warm-up runs, then 10..100 ms
    timing, warm = time_calls(clock.work, batch=2, warmup=2, repeats=10, clock=clock)
    assert warm == 2 and timing.repeats == 10
    assert timing.p50_ms == pytest.approx(55.0) and timing.p90_ms == pytest.approx(90.0)
    assert timing.min_ms == pytest.approx(10.0) and timing.mean_ms == pytest.approx(55.0)
    assert timing.images_per_s == pytest.approx(2 / 0.055)


def test_time_calls_repeats_until_enough_runs_and_enough_seconds():
    clock = FakeClock(itertools.repeat(0.5))
    timing, warm = time_calls(clock.work, batch=1, clock=clock)
    assert warm == 3  # 3 runs already take more than the minimal warm-up time
    assert timing.repeats == 20  # 20 runs of 0.5 s: past the 2 s minimum
    clock = FakeClock(itertools.repeat(2.0 ** -10))  # exact in binary: no rounding at the limits
    timing, warm = time_calls(clock.work, batch=1, clock=clock)
    assert warm == 512 and timing.repeats == 2048  # 0.5 s of warm-up, then 2 s of timing


@pytest.fixture(scope="module")
def city_run(tmp_path_factory):
    from tests.test_evaluate_cli import CITY_RECIPE, city_registries, train_toy

    registries = city_registries()
    return train_toy(tmp_path_factory.mktemp("city"), registries, CITY_RECIPE), registries


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_benchmark_records_both_timings_and_the_machine_into_the_run(city_run, backend):
    if backend == "onnxruntime":
        pytest.importorskip("onnxruntime")
    run, registries = city_run
    record = benchmark(run.path, backend=backend, threads=1, repeats=5, warmup=1, registries=registries)
    assert record.backend == backend and record.model == "nobn" and record.batch == 1
    assert record.input_size == (16, 16) and record.threads == 1  # full resolution of the report images
    assert record.device == "cpu" and record.precision == "fp32" and record.cpu and record.instruction_set
    for timing in (record.model_only, record.end_to_end):
        assert timing.repeats == 5 and 0 < timing.min_ms <= timing.p50_ms <= timing.p90_ms
        assert timing.images_per_s == pytest.approx(1e3 / timing.p50_ms)
    assert "normalisation" in record.timed_end_to_end and "decoding" in record.not_timed
    saved = json.loads((run.path / f"benchmark-{backend}.json").read_text())
    assert saved["model_only"]["p50_ms"] == record.model_only.p50_ms and saved["threads"] == 1
    assert read_latency(run.path, backend) == record


def test_compare_shows_latency_and_fps_columns(city_run):
    run, registries = city_run
    record = read_latency(run.path, "torch") or benchmark(run.path, threads=1, repeats=3, warmup=1,
                                                          registries=registries)
    rows = collect_runs(run.path.parent)
    table = markdown_tables(rows)
    assert "torch ms (model / e2e)" in table and "torch FPS" in table
    assert f"{record.model_only.p50_ms:.2f} / {record.end_to_end.p50_ms:.2f}" in table
    assert record.cpu in table and "1 thread(s)" in table
    header, values = csv_table(rows).splitlines()[:2]
    columns = dict(zip(header.split(","), values.split(",")))
    assert float(columns["torch_e2e_images_per_s"]) == record.end_to_end.images_per_s
    assert columns["torch_threads"] == "1" and columns["torch_size"] == "16x16"


def test_bad_options_are_refused(city_run):
    from segbench.errors import SegbenchError

    run, registries = city_run
    with pytest.raises(SegbenchError, match="--threads 0"):
        benchmark(run.path, threads=0, registries=registries)


def test_pareto_front_keeps_runs_nothing_beats_on_both_axes():
    from segbench.report.pareto import pareto_front

    points = [(10.0, 60.0), (5.0, 50.0), (20.0, 55.0), (40.0, 70.0), (5.0, 45.0)]
    assert pareto_front(points) == [(5.0, 50.0), (10.0, 60.0), (40.0, 70.0)]


def test_plot_pareto_draws_the_benchmarked_runs(cli, city_run, tmp_path):
    from PIL import Image

    run, registries = city_run
    if read_latency(run.path, "torch") is None:
        benchmark(run.path, threads=1, repeats=3, warmup=1, registries=registries)
    status, out, err = cli("plot", "--pareto", run.path.parent, "--out", tmp_path / "pareto.png")
    assert status == 0, err
    with Image.open(out.strip()) as image:
        assert image.size == (900, 600)
    status, _, err = cli("plot", "--pareto", run.path.parent, tmp_path)
    assert status == 2 and "one runs directory" in err


@pytest.mark.slow
def test_benchmark_command_times_a_recipe_with_random_weights(cli, tmp_path):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text("""\
model: {name: unet, width: 4}
data:
  dataset: {name: synthetic_city, train: 2, val: 1, train_extra: 0, size: [32, 64]}
  train: {split: train}
  report: {split: val}
loss: {name: cross_entropy}
optimizer: {name: adam}
trainer: {precision: fp32, select_on: report}
""")
    status, out, err = cli("benchmark", recipe, "--threads", "1", "--repeats", "2", "--warmup", "1")
    assert status == 0, err
    # fp32's memory format is the rule's for this CPU: channels-last where torch runs its AVX-512 kernels
    layout = ", channels-last" if choose_numerics("fp32", None, torch.device("cpu")).channels_last else ""
    assert f"unet on torch, cpu fp32{layout}: input 1x3x32x64" in out and "1 thread(s)" in out
    assert "model only" in out and "end to end" in out and "not timed: reading/decoding" in out
    assert "not saved" in err and sorted(p.name for p in tmp_path.iterdir()) == ["tiny.yaml"]


def test_the_activation_peak_counts_the_outputs_alive_at_once():
    import torch

    from segbench.report.memory_guard import activation_peak_bytes

    # conv (8 channels) -> ReLU in place on it -> conv (4 channels): the first output is still alive when the
    # second is made from it, so the peak holds both
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 1), torch.nn.ReLU(inplace=True), torch.nn.Conv2d(8, 4, 1))
    assert activation_peak_bytes(model.eval(), (16, 32), "cpu") == (8 + 4) * 16 * 32 * 4


def test_a_size_that_cannot_fit_in_memory_is_refused_before_the_forward_pass(city_run, monkeypatch):
    from segbench.errors import SegbenchError
    from segbench.report import memory_guard

    run, registries = city_run
    monkeypatch.setattr(memory_guard, "free_bytes", lambda device: 50 * 2**20)  # 50 MiB free
    record = run.path / "benchmark-torch.json"
    before = record.read_text() if record.exists() else None
    with pytest.raises(SegbenchError, match=r"--size 4096x4096 \(batch 2\): one forward pass needs about .* GiB,"
                                            r" and 0.0 GiB are free on this cpu"):
        benchmark(run.path, size=(4096, 4096), batch=2, registries=registries, repeats=1, warmup=0)
    assert (record.read_text() if record.exists() else None) == before
    benchmark(run.path, size=(32, 48), registries=registries, repeats=1, warmup=0)  # a small one fits


def test_latencies_measured_in_other_settings_are_tagged_and_not_plotted_together(cli, city_run, tmp_path):
    import shutil

    run, registries = city_run
    runs = tmp_path / "runs"
    first, second = (shutil.copytree(run.path, runs / name, ignore=shutil.ignore_patterns("benchmark-*"))
                     for name in (f"{run.path.name}-a", f"{run.path.name}-b"))
    benchmark(first, threads=1, repeats=2, warmup=1, registries=registries)
    benchmark(second, threads=1, batch=2, size=(24, 24), repeats=2, warmup=1, registries=registries)
    table = markdown_tables(collect_runs(runs))
    assert "[a]" in table and "[b]" in table and "several settings" in table
    assert "batch 1, 16x16" in table and "batch 2, 24x24" in table
    header, *lines = csv_table(collect_runs(runs)).splitlines()
    assert sorted(dict(zip(header.split(","), line.split(",")))["torch_batch"] for line in lines) == ["1", "2"]
    status, _, err = cli("plot", "--pareto", runs, "--out", tmp_path / "pareto.png")
    assert status == 2 and "different settings" in err and second.name in err and "--batch" in err
    benchmark(second, threads=1, repeats=2, warmup=1, registries=registries)  # measured alike: one setting
    # onnxruntime always runs fp32 on the CPU: its column is compared within itself, not with torch's
    benchmark(first, threads=1, repeats=2, warmup=1, backend="onnxruntime", registries=registries)
    assert "[a]" not in markdown_tables(collect_runs(runs))
    status, _, err = cli("plot", "--pareto", runs, "--out", tmp_path / "pareto.png")
    assert status == 0, err
