"""ONNX export: every registered model exports, and onnxruntime computes what PyTorch computes.

Tolerance: logits may differ by at most ``ATOL`` (fp32 kernels of two libraries summing in different
orders), and the argmax must agree on at least 99.9% of the pixels of synthetic-city val images.
"""
import json
from pathlib import Path

import attrs
import pytest
import torch

from segbench.functional.augment import normalize
from segbench.plugins import make_plugin_manager
from segbench.registry import build_registries

pytest.importorskip("onnxruntime")

from segbench.report.export import export_onnx  # noqa: E402
from segbench.report.onnx_runtime import OnnxModel  # noqa: E402
from segbench.report.evaluate_cli import evaluate_run  # noqa: E402

ATOL = 1e-3
MIN_ARGMAX_AGREEMENT = 0.999
REGISTRIES = build_registries(make_plugin_manager(load_entry_points=False))
SMALL_SETTINGS = {"unet": {"width": 8}}
FAST = {"fast_scnn", "unet"}  # one quick model in the default run; the others under .ci/run
MODELS = [pytest.param(name, marks=() if name in FAST else pytest.mark.slow) for name in REGISTRIES.models.names()]


@pytest.fixture(scope="module")
def val_images():
    """Two synthetic-city val images, normalised as the eval transforms do: ``(2, 3, 64, 128)``."""
    entry = REGISTRIES.datasets.get("synthetic_city")
    config = attrs.evolve(entry.default_config(), train=2, val=2, train_extra=0, size=(64, 128), split="val")
    dataset = entry.factory(config)
    return torch.stack([normalize(dataset[i][0]) for i in range(2)])


def _model(name):
    entry = REGISTRIES.models.get(name)
    torch.manual_seed(0)
    return entry.factory(attrs.evolve(entry.default_config(), **SMALL_SETTINGS.get(name, {})), num_classes=19).eval()


@pytest.mark.parametrize("name", MODELS)
def test_onnxruntime_logits_match_pytorch(name, tmp_path, val_images):
    model = _model(name)
    path = tmp_path / f"{name}.onnx"
    export_onnx(model, path, size=(64, 128), dynamic=True)
    onnx_model = OnnxModel(path)
    with torch.no_grad():
        expected = model(val_images)
        got = onnx_model(val_images)
        assert got.shape == expected.shape
        assert (got - expected).abs().max().item() <= ATOL
        assert (got.argmax(1) == expected.argmax(1)).float().mean().item() >= MIN_ARGMAX_AGREEMENT
        # dynamic axes: other sizes run as well, not multiples of the models' strides, and smaller than the
        # smallest input a model takes without padding it (a branch on the size must not be fixed at tracing)
        for size in ((48, 80), (7, 9)):
            other = torch.nn.functional.interpolate(val_images[:1], size=size, mode="bilinear")
            torch.testing.assert_close(onnx_model(other), model(other), atol=ATOL, rtol=0)


def test_an_opset_the_exporter_would_only_warn_about_is_refused(tmp_path):
    from torch.onnx import _constants

    from segbench.errors import SegbenchError

    highest = _constants.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET  # the TorchScript-based exporter segbench uses
    with pytest.raises(SegbenchError, match=rf"--opset {highest + 1}: .* cannot write that ONNX opset \(at most"
                                            rf" {highest}\)"):
        export_onnx(_model("unet"), tmp_path / "m.onnx", size=(64, 128), opset=highest + 1)
    assert not (tmp_path / "m.onnx").exists()


def test_a_fixed_size_export_refuses_other_sizes(tmp_path, val_images):
    from segbench.errors import SegbenchError

    path = tmp_path / "fixed.onnx"
    export_onnx(_model("unet"), path, size=(64, 128))
    with pytest.raises(SegbenchError, match=r"exported for 64x128 images but gets 32x64.*--dynamic"):
        OnnxModel(path)(val_images[:, :, :32, :64])


def test_a_fixed_size_export_scores_a_batch_one_image_at_a_time(tmp_path, val_images):
    model = _model("unet")
    path = tmp_path / "fixed.onnx"
    export_onnx(model, path, size=(64, 128))  # batch axis fixed at 1, as `segbench export` writes by default
    onnx_model = OnnxModel(path)
    assert onnx_model.fixed_batch == 1 and len(val_images) == 2
    with torch.no_grad():
        expected, got = model(val_images), onnx_model(val_images)
    assert got.shape == expected.shape and (got - expected).abs().max().item() <= ATOL


@pytest.fixture(scope="module")
def city_run(tmp_path_factory):
    from tests.test_evaluate_cli import CITY_RECIPE, city_registries, train_toy

    registries = city_registries()
    return train_toy(tmp_path_factory.mktemp("city"), registries, CITY_RECIPE), registries


def test_evaluate_with_onnxruntime_gives_pytorchs_miou(city_run):
    from segbench.records import read_evaluation
    from segbench.report.export import export_run

    run, registries = city_run
    record = export_run(run.path, dynamic=True, registries=registries)
    assert record.opset == 17 and record.dynamic and record.input_size is None
    saved = json.loads((run.path / "export" / "nobn-dynamic.json").read_text())
    assert saved["opset"] == 17 and saved["file"] == str(run.path / "export" / "nobn-dynamic.onnx")
    torch_scores = evaluate_run(run.path, registries=registries, progress=False)
    onnx_scores = evaluate_run(run.path, registries=registries, progress=False, backend="onnxruntime")
    assert onnx_scores.backend == "onnxruntime" and onnx_scores.onnx == record.file
    assert torch_scores.backend == "torch" and torch_scores.onnx is None
    saved = read_evaluation(run.path / "evaluation-report-onnxruntime.json")
    assert saved == onnx_scores
    assert "backend" not in json.loads((run.path / "evaluation-report.json").read_text())  # as before
    assert abs(onnx_scores.mIoU - torch_scores.mIoU) <= 1e-4
    assert abs(onnx_scores.pixel_accuracy - torch_scores.pixel_accuracy) <= 1e-4


def test_export_defaults_to_the_report_images_size_and_evaluate_needs_an_export(city_run, tmp_path):
    from segbench.errors import SegbenchError
    from segbench.report.export import export_run

    run, registries = city_run
    record = export_run(run.path, out=tmp_path / "fixed.onnx", registries=registries)
    assert record.input_size == (16, 16) and not record.dynamic  # the toy's report images
    assert (tmp_path / "fixed.json").is_file()
    empty = tmp_path / "copy"
    import shutil

    shutil.copytree(run.path, empty, ignore=shutil.ignore_patterns("export"))
    with pytest.raises(SegbenchError, match="holds no .onnx file.*segbench export"):
        evaluate_run(empty, registries=registries, progress=False, backend="onnxruntime")


def test_evaluate_refuses_an_onnx_file_of_another_run_or_model(city_run, tmp_path):
    """The scores are written into the run's folder: another run's export must not land under its name."""
    import shutil

    from segbench.errors import SegbenchError
    from segbench.report.export import export_run

    run, registries = city_run
    record = export_run(run.path, out=tmp_path / "theirs" / "nobn.onnx", dynamic=True, registries=registries)
    other = tmp_path / "other-0123abcd"
    shutil.copytree(run.path, other, ignore=shutil.ignore_patterns("export", "evaluation-*"))
    with pytest.raises(SegbenchError, match=rf"does not belong to run .*exported from run {run.path.name}"):
        evaluate_run(other, registries=registries, progress=False, backend="onnxruntime", onnx_file=record.file)
    assert not list(other.glob("evaluation-*"))
    (other / "export").mkdir()
    shutil.copy(record.file, other / "export" / "nobn.onnx")
    sidecar = json.loads(Path(record.file).with_suffix(".json").read_text())
    (other / "export" / "nobn.json").write_text(json.dumps({**sidecar, "model": "enet"}))
    with pytest.raises(SegbenchError, match="it holds model enet .* the run trains nobn"):
        evaluate_run(other, registries=registries, progress=False, backend="onnxruntime")


def test_export_never_writes_over_a_file_the_run_keeps(city_run):
    from segbench.errors import SegbenchError
    from segbench.report.export import export_run

    run, registries = city_run
    results = run.results.read_bytes()
    for out in (run.path / "results.onnx", run.path / "checkpoints" / "best.pt"):  # results.onnx: its results.json
        with pytest.raises(SegbenchError, match="would overwrite the run's own"):
            export_run(run.path, out=out, registries=registries)
    assert run.results.read_bytes() == results
    with pytest.raises(SegbenchError, match="would write into the run's checkpoints folder"):
        export_run(run.path, out=run.path / "checkpoints" / "model.onnx", registries=registries)


def _without_onnxruntime(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def without_onnxruntime(name, *args, **kwargs):
        if name == "onnxruntime":
            raise ImportError("No module named 'onnxruntime'", name="onnxruntime")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_onnxruntime)


def test_missing_onnx_packages_are_named_with_the_extra_to_install(monkeypatch):
    from segbench.errors import SegbenchError
    from segbench.report.onnx_runtime import require_onnx

    _without_onnxruntime(monkeypatch)
    with pytest.raises(SegbenchError, match=r"onnxruntime is not installed.*pip install 'segbench\[export\]'"):
        require_onnx()


def test_scoring_with_onnxruntime_not_installed_says_what_to_install_before_what_to_export(tmp_path, monkeypatch):
    from segbench.errors import SegbenchError

    _without_onnxruntime(monkeypatch)
    with pytest.raises(SegbenchError, match=r"pip install 'segbench\[export\]'"):
        evaluate_run(tmp_path, backend="onnxruntime", progress=False)  # no export there either


def test_export_command_line_rejects_size_with_dynamic(cli, tmp_path):
    status, _, err = cli("export", tmp_path, "--size", "64x128", "--dynamic")
    assert status == 2 and "not allowed with argument" in err
    status, _, err = cli("export", tmp_path, "--size", "64by128")
    assert status == 2 and "HEIGHTxWIDTH" in err


class _BranchesOnSize(torch.nn.Module):
    """Halves its logits for inputs narrower than 16 pixels, decided in Python: tracing fixes the branch."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 19, 1)

    def forward(self, x):
        logits = self.conv(x)
        return logits * 0.5 if x.shape[-1] < 16 else logits


def test_a_dynamic_export_that_computes_something_else_at_other_sizes_is_refused(tmp_path):
    path = tmp_path / "branchy.onnx"
    from segbench.errors import SegbenchError

    with pytest.raises(SegbenchError, match=r"traced at 64x128 does not compute the model at 7x9.*--size"):
        export_onnx(_BranchesOnSize(), path, size=(64, 128), dynamic=True)
    assert not path.exists()
    export_onnx(_BranchesOnSize(), path, size=(64, 128))  # a fixed size is what it was traced at
    assert path.is_file()


def test_onnx_scores_are_filed_under_the_checkpoint_the_export_came_from(city_run, tmp_path, capsys):
    import shutil

    from segbench.report.export import export_run

    run, registries = city_run
    last = export_run(run.path, dynamic=True, checkpoint="last", out=run.path / "export" / "from-last.onnx",
                      registries=registries)
    scores = evaluate_run(run.path, registries=registries, progress=False, backend="onnxruntime",
                          onnx_file=Path(last.file))  # evaluate's own default checkpoint is best.pt
    assert Path(scores.checkpoint).resolve() == Path(last.checkpoint).resolve() and scores.checkpoint.endswith("last.pt")
    from segbench.engine.checkpoint import load_checkpoint

    assert scores.checkpoint_iteration == load_checkpoint(Path(last.checkpoint))["train_state"]["iteration"]
    bare = tmp_path / "bare.onnx"
    shutil.copy(last.file, bare)  # no export record beside it
    capsys.readouterr()
    scores = evaluate_run(run.path, registries=registries, progress=False, backend="onnxruntime", onnx_file=bare)
    assert scores.checkpoint.startswith("unknown") and scores.checkpoint_epoch is None
    assert "export record" in capsys.readouterr().err


def test_onnx_scores_refuse_a_checkpoint_the_export_does_not_hold(city_run, tmp_path):
    from segbench.errors import SegbenchError
    from segbench.report.export import export_run

    run, registries = city_run
    best = export_run(run.path, dynamic=True, checkpoint="best", out=tmp_path / "from-best.onnx",
                      registries=registries)
    with pytest.raises(SegbenchError, match=r"--checkpoint last: .*from-best\.onnx was exported from .*best\.pt"):
        evaluate_run(run.path, registries=registries, progress=False, backend="onnxruntime",
                     onnx_file=Path(best.file), checkpoint="last")
    # the checkpoint trained on since the export: the record's iteration no longer matches the file's
    record = json.loads(Path(best.file).with_suffix(".json").read_text())
    Path(best.file).with_suffix(".json").write_text(json.dumps({**record, "checkpoint_iteration": 1}))
    with pytest.raises(SegbenchError, match=r"at training iteration 1; that file now holds iteration \d+ .* Export"
                                            r" it again"):
        evaluate_run(run.path, registries=registries, progress=False, backend="onnxruntime",
                     onnx_file=Path(best.file))
