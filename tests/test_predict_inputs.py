"""``segbench predict`` on folders (recursively) and on videos (an overlay video per clip)."""
import argparse
import contextlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from segbench.errors import DataError
from segbench.report.loading import load_run
from segbench.palette import colorize, overlay
from segbench.report.predict import predict_command, predict_files, predict_image, read_image
from tests import engine_plugin


@pytest.fixture(scope="module")
def city_run(tmp_path_factory):
    from tests.test_evaluate_cli import CITY_RECIPE, city_registries, train_toy

    registries = city_registries()
    return train_toy(tmp_path_factory.mktemp("city"), registries, CITY_RECIPE), registries


def _frames(count=6, size=(32, 48)):
    """Moving bands of brightness: ``count`` RGB frames ``(H, W, 3)`` uint8."""
    ramp = np.linspace(0, 255, size[1], dtype=np.float32)
    return [np.repeat(np.roll(ramp, 4 * i)[None, :, None], size[0], 0).repeat(3, 2).astype(np.uint8)
            for i in range(count)]


def _write_clip(path, frames, rate=10):
    av = pytest.importorskip("av")
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=rate)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _read_clip(path):
    av = pytest.importorskip("av")
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def test_a_folder_is_searched_recursively_and_its_tree_mirrored(city_run, tmp_path):
    run, registries = city_run
    dataset = engine_plugin.Blobs(engine_plugin.BlobsConfig(split="val", count=3, size=16))
    folder = tmp_path / "drive"
    paths = [folder / "a.png", folder / "day" / "a.png", folder / "day" / "night" / "b.jpg"]
    for path, (image, _) in zip(paths, (dataset[i] for i in range(3))):
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(path, quality=95)
    (folder / "notes.txt").write_text("not an image")
    results = predict_files(run.path, [folder], tmp_path / "out", registries=registries)
    assert [r.image for r in results] == sorted(paths)
    loaded, _ = load_run(run.path, registries, checkpoint="best")
    for path, result in zip(sorted(paths), results):
        relative = path.parent.relative_to(folder)
        assert result.pred == tmp_path / "out" / relative / f"{path.stem}_pred.png"
        assert np.array_equal(np.array(Image.open(result.pred)), predict_image(loaded, read_image(path)))


def test_an_output_folder_inside_the_input_folder_is_not_predicted_again(city_run, tmp_path):
    run, registries = city_run
    dataset = engine_plugin.Blobs(engine_plugin.BlobsConfig(split="val", count=2, size=16))
    folder = tmp_path / "drive"
    folder.mkdir()
    for index in range(2):
        Image.fromarray(dataset[index][0].permute(1, 2, 0).numpy()).save(folder / f"{index}.png")
    for _ in range(2):  # the second time, the first time's predictions lie in the input folder
        results = predict_files(run.path, [folder], folder / "preds", registries=registries)
        assert [r.image for r in results] == [folder / "0.png", folder / "1.png"]
    assert not list((folder / "preds").rglob("*_pred_pred.png"))


def test_a_video_gets_an_overlay_video_and_the_command_prints_images_per_second(city_run, tmp_path, capsys):
    run, registries = city_run
    frames = _frames()
    clip = tmp_path / "clip.mp4"
    _write_clip(clip, frames)
    decoded = _read_clip(clip)  # what the model sees: the clip's frames after compression
    args = argparse.Namespace(run_dir=run.path, images=[clip], out=tmp_path / "out", labels=None, device=None,
                              checkpoint=None)
    (result,) = predict_command(args, registries=registries)
    assert result.overlay == tmp_path / "out" / "clip_overlay.mp4" and result.frames == len(frames)
    umask = os.umask(0)
    os.umask(umask)
    assert result.overlay.stat().st_mode & 0o777 == 0o666 & ~umask, "the mode of any new file, not mkstemp's 0o600"
    written = _read_clip(result.overlay)
    assert len(written) == len(frames) and written[0].shape == (32, 48, 3)
    loaded, _ = load_run(run.path, registries)
    for source, got in zip(decoded, written):
        pred = predict_image(loaded, torch.from_numpy(source).permute(2, 0, 1).contiguous())
        expected = overlay(source, colorize(pred, loaded.info.palette), alpha=0.5)
        assert np.abs(got.astype(int) - expected.astype(int)).mean() < 12  # lossy re-encoding only
    err = capsys.readouterr().err
    assert "1 video(s)" in err and f"{len(frames)} image(s) in" in err and "images/s" in err


def test_a_video_of_frames_too_small_to_encode_is_refused_naming_it(city_run, tmp_path, cli, monkeypatch):
    av = pytest.importorskip("av")
    run, registries = city_run
    clip = tmp_path / "tiny.mkv"
    with av.open(str(clip), mode="w") as container:  # ffv1 takes a 1x1 frame, which H.264 output cannot
        stream = container.add_stream("ffv1", rate=10)
        stream.height, stream.width, stream.pix_fmt = 1, 1, "yuv444p"
        for packet in [*stream.encode(av.VideoFrame.from_ndarray(np.zeros((1, 1, 3), np.uint8), format="rgb24")),
                       *stream.encode()]:
            container.mux(packet)
    monkeypatch.setattr("segbench.report.loading.default_registries", lambda: registries)
    status, _, err = cli("predict", run.path, clip, "--out", tmp_path / "out")
    assert status == 2 and "Traceback" not in err and "has frames of 1x1 pixels" in err and "tiny.mkv" in err
    assert not list((tmp_path / "out").glob("*.mp4"))


def test_video_without_pyav_names_the_extra(city_run, tmp_path, monkeypatch):
    import builtins

    from segbench.errors import SegbenchError

    run, registries = city_run
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"")
    real_import = builtins.__import__

    def without_av(name, *args, **kwargs):
        if name == "av":
            raise ImportError("No module named 'av'", name="av")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_av)
    with pytest.raises(SegbenchError, match=r"pip install 'segbench\[video\]'"):
        predict_files(run.path, [clip], tmp_path / "out", registries=registries)


def test_a_prediction_cut_short_leaves_the_previous_file_whole(city_run, tmp_path, monkeypatch):
    run, registries = city_run
    dataset = engine_plugin.Blobs(engine_plugin.BlobsConfig(split="val", count=1, size=16))
    Image.fromarray(dataset[0][0].permute(1, 2, 0).numpy()).save(tmp_path / "street.png")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "street_pred.png").write_bytes(b"the previous prediction")

    class Interrupted:  # a PNG write that a full disk stops halfway
        def save(self, target, format=None):
            with (open(target, "wb") if isinstance(target, (str, Path)) else contextlib.nullcontext(target)) as f:
                f.write(b"half a PNG")
            raise OSError(28, "No space left on device")

    monkeypatch.setattr("segbench.report.predict.palette_png", lambda pred, palette: Interrupted())
    with pytest.raises(Exception):
        predict_files(run.path, [tmp_path / "street.png"], tmp_path / "out", registries=registries)
    assert (tmp_path / "out" / "street_pred.png").read_bytes() == b"the previous prediction"
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["street_pred.png"]


def test_an_empty_folder_is_an_error(city_run, tmp_path):
    from segbench.errors import DataError

    run, registries = city_run
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty holds no image or video files"):
        predict_files(run.path, [tmp_path / "empty"], tmp_path / "out", registries=registries)


@pytest.mark.parametrize("report_checkpoint", ["last", "best"])
def test_predict_uses_the_checkpoint_the_runs_scores_come_from(tmp_path, capsys, report_checkpoint):
    from tests.test_evaluate_cli import CITY_RECIPE, city_registries, train_toy

    registries = city_registries()
    recipe = CITY_RECIPE.replace("log_every: 1}", f"log_every: 1, report_checkpoint: {report_checkpoint}}}")
    run = train_toy(tmp_path / "train", registries, recipe)
    # best.pt as another epoch's weights would be: predictions that differ from last.pt's
    state = torch.load(run.path / "checkpoints" / "last.pt", weights_only=False)
    state["model"] = {key: -value if value.is_floating_point() else value for key, value in state["model"].items()}
    torch.save(state, run.path / "checkpoints" / "best.pt")
    image = tmp_path / "a.png"
    Image.fromarray(engine_plugin.Blobs(engine_plugin.BlobsConfig(split="val", count=1, size=16))[0][0]
                    .permute(1, 2, 0).numpy()).save(image)
    predictions = {}
    for chosen, expected in (("best", "best"), ("last", "last"), (None, report_checkpoint)):
        args = argparse.Namespace(run_dir=run.path, images=[image], out=tmp_path / f"out-{chosen}", labels=None,
                                  device=None, checkpoint=chosen)
        (files,) = predict_command(args, registries=registries)
        assert f"predicting with {run.path / 'checkpoints' / expected}.pt" in capsys.readouterr().err
        predictions[expected] = np.asarray(Image.open(files.pred))
        loaded, _ = load_run(run.path, registries, checkpoint=expected)
        assert np.array_equal(predictions[expected], predict_image(loaded, read_image(image)))
    assert not np.array_equal(predictions["best"], predictions["last"]), "the two checkpoints must differ"


def test_a_16_bit_grey_image_keeps_its_contrast(tmp_path):
    grey = np.linspace(0, 65535, 24 * 32).reshape(24, 32).astype(np.uint16)
    Image.fromarray(grey).save(tmp_path / "grey16.png")
    Image.fromarray((grey >> 8).astype(np.uint8)).save(tmp_path / "grey8.png")
    assert Image.open(tmp_path / "grey16.png").mode.startswith("I")
    wide, narrow = read_image(tmp_path / "grey16.png"), read_image(tmp_path / "grey8.png")
    assert torch.equal(wide, narrow) and int(wide.min()) == 0 and int(wide.max()) == 255


def test_a_photo_is_turned_as_its_exif_orientation_says(tmp_path):
    stored = np.zeros((16, 40, 3), np.uint8)
    stored[:, :8] = 255  # a white band on the left of the stored pixels
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    image.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    shown = read_image(tmp_path / "phone.jpg")
    assert tuple(shown.shape) == (3, 40, 16)  # as a viewer shows it: tall
    assert int(shown[:, :8].float().mean()) > 200 and int(shown[:, -8:].float().mean()) < 50  # the band on top


@pytest.mark.parametrize("drawn_on", ["stored pixels", "photo as shown"])
def test_a_photos_label_fits_it_drawn_on_either_its_stored_pixels_or_the_photo_as_shown(city_run, tmp_path,
                                                                                         drawn_on):
    """Scored against a photo turned by its EXIF orientation, a label that fits only its stored pixels is turned
    alike, and one drawn on the photo as shown (as labelme and CVAT do) is used as it is: either scores as the
    photo and label turned beforehand (without EXIF) do."""
    run, registries = city_run
    dataset = engine_plugin.Blobs(engine_plugin.BlobsConfig(split="val", count=1, size=16))
    image, mask = dataset[0]
    stored, label = image.permute(1, 2, 0).numpy()[:, :12], mask.numpy()[:, :12]  # not square: 12 wide, 16 tall
    shown_label = np.rot90(label, -1)
    results = {}
    for name, pixels, truth, orientation in (
            ("phone", stored, label if drawn_on == "stored pixels" else shown_label, 6),
            ("shown", np.rot90(stored, -1), shown_label, 1)):
        folder = tmp_path / name  # the same file names: the panels' titles match
        folder.mkdir()
        photo = Image.fromarray(np.ascontiguousarray(pixels))
        exif = photo.getexif()
        exif[0x0112] = orientation  # 6: "rotate 90 degrees clockwise to display"; 1: as stored
        photo.save(folder / "street.png", exif=exif)
        Image.fromarray(np.ascontiguousarray(truth)).save(folder / "street_label.png")
        (results[name],) = predict_files(run.path, [folder / "street.png"], folder / "out",
                                         labels=[folder / "street_label.png"], registries=registries)
    turned, shown = results["phone"], results["shown"]
    assert Image.open(turned.pred).size == (16, 12)
    assert turned.summary == shown.summary
    assert np.array_equal(np.asarray(Image.open(turned.panel)), np.asarray(Image.open(shown.panel)))


def test_a_label_that_fits_a_half_turned_photo_either_way_is_taken_as_drawn_on_it_as_shown_with_a_warning(
        city_run, tmp_path, capsys):
    run, registries = city_run
    photo = Image.fromarray(np.full((16, 12, 3), 90, np.uint8))
    exif = photo.getexif()
    exif[0x0112] = 3  # a half turn: the same size either way
    photo.save(tmp_path / "upside_down.jpg", exif=exif)
    Image.fromarray(np.zeros((16, 12), np.uint8)).save(tmp_path / "label.png")
    (result,) = predict_files(run.path, [tmp_path / "upside_down.jpg"], tmp_path / "out",
                              labels=[tmp_path / "label.png"], registries=registries)
    assert result.summary is not None
    assert "label.png is taken as drawn on its image as shown" in capsys.readouterr().err


def test_a_label_file_of_values_that_are_no_ids_is_refused_not_scored_as_ignored(city_run, tmp_path):
    run, registries = city_run
    Image.fromarray(np.full((16, 12, 3), 90, np.uint8)).save(tmp_path / "street.png")
    mask = np.full((16, 12), 200, np.uint8)  # a 0/200 mask from another tool, not label ids
    mask[:4] = 0
    Image.fromarray(mask).save(tmp_path / "mask.png")
    with pytest.raises(DataError, match=r"label .*mask.png holds value\(s\) 200, which are not"):
        predict_files(run.path, [tmp_path / "street.png"], tmp_path / "out", labels=[tmp_path / "mask.png"],
                      registries=registries)


def test_a_photo_whose_exif_block_cannot_be_parsed_is_read_as_stored(tmp_path):
    Image.fromarray(np.full((6, 10, 3), 30, np.uint8)).save(tmp_path / "odd.png", exif=b"Exif\x00\x00garbage")
    assert tuple(read_image(tmp_path / "odd.png").shape) == (3, 6, 10)
