"""``segbench predict``: a run's predictions on images and videos, as files a person wants to look at.

Inputs are image files, folders (searched recursively for image and video files; the folder's tree
is mirrored below ``--out``) and video files (``<stem>_overlay.mp4``: every frame with its coloured
prediction blended in; needs PyAV, ``pip install 'segbench[video]'``). The command prints the
images (frames) per second of the whole pass: reading, predicting and writing.

For each input ``<stem>.png`` (a Cityscapes ``<id>_leftImg8bit.png`` gives ``<stem>`` = ``<id>``):

- ``<stem>_pred.png``: the prediction at the image's full resolution, a palette (P-mode) PNG whose
  pixel values are the train ids and whose palette is the dataset's class colours;
- ``<stem>_overlay.png``: the coloured prediction blended over the image (RGB, alpha 0.5);
- ``<stem>_panel.png`` when a ground truth is known: image | ground truth | prediction side by side
  (RGB), with titles (the image's own mIoU and pixel accuracy) and a legend of the classes shown.
  Ignored ground-truth pixels are black.

Ground truth comes from ``--labels`` (labelIds PNGs, one per image, in order) or, for an image
inside a Cityscapes tree, from its ``gtFine/<split>/<city>/<id>_gtFine_labelIds.png`` when that exists.
"""
from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Sequence

import attrs
import numpy as np
import torch
from PIL import ExifTags, Image, UnidentifiedImageError

from segbench.atomic import atomic_write_bytes, make_folder
from segbench.engine.evaluate import predict
from segbench.errors import DataError, SegbenchError
from segbench.functional.metrics import confusion_matrix, summarize
from segbench.report.inputs import expand_inputs
from segbench.report.loading import LoadedRun, load_run
from segbench.palette import colorize, comparison_panel, overlay, palette_png

CITYSCAPES_IMAGE_SUFFIX = "_leftImg8bit"
OVERLAY_ALPHA = 0.5


@attrs.frozen
class PredictionFiles:
    image: Path
    pred: Path
    overlay: Path
    panel: Path | None
    label: Path | None
    summary: dict | None  # this image's mIoU / pixel accuracy when a label was given


# 4x Cityscapes' 2048x1024 on each side: larger images are refused from their header, before decoding.
MAX_IMAGE_PIXELS = 8192 * 4096


def _open_header(path: Path) -> Image.Image:
    """``Image.open`` (which reads only the header) with PIL's own pixel bound lifted: ``_opened`` applies a lower
    one and names the size."""
    previous, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        return Image.open(path)
    finally:
        Image.MAX_IMAGE_PIXELS = previous


@contextlib.contextmanager
def _opened(path: Path):
    """The image file at ``path`` opened (its header read) and of a sane size; what goes wrong reading it,
    then or in the ``with`` body, is a :class:`DataError` naming the file."""
    if not path.is_file():
        raise DataError(f"image {path} does not exist" + (" (it is a directory)" if path.is_dir() else ""))
    try:
        with _open_header(path) as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise DataError(f"image {path} is {width}x{height} ({width * height:,} pixels), more than the"
                                f" {MAX_IMAGE_PIXELS:,} pixels `segbench predict` decodes; downscale or crop it first")
            yield image
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
        raise DataError(f"image {path} cannot be read as an image ({exc}); give PNG or JPEG files") from None


def check_image(path: Path) -> None:
    """Read only ``path``'s header: it must be an image of a sane size (the pixels are not decoded)."""
    with _opened(Path(path)):
        pass


def _rgb_array(image: Image.Image) -> np.ndarray:
    """``(H, W, 3)`` ``uint8``. PIL's ``convert("RGB")`` clips 16-bit grey values to 255 (a white image):
    their top 8 bits are kept instead, as for 16-bit RGB files."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        grey = (np.clip(np.asarray(image, dtype=np.int64), 0, 65535) >> 8).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    return np.asarray(image.convert("RGB"))


@attrs.frozen
class Photo:
    pixels: torch.Tensor  # uint8 RGB (3, H, W), as a viewer shows the file
    turn: Image.Transpose | None  # how its EXIF orientation turned the stored pixels (None: not at all)


def read_photo(path: Path) -> Photo:
    """An image file as viewers show it (a phone's photo turned as its EXIF orientation says); any format PIL
    reads."""
    with _opened(Path(path)) as image:
        image.load()  # a PNG's EXIF block may follow its pixels
        turn = _exif_turn(image)
        array = _rgb_array(image if turn is None else image.transpose(turn))
    return Photo(torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous(), turn)


def read_image(path: Path) -> torch.Tensor:
    """``read_photo(path).pixels``: ``uint8`` RGB ``(3, H, W)``."""
    return read_photo(path).pixels


# How each EXIF orientation turns the stored pixels for display (the table ImageOps.exif_transpose applies).
_EXIF_TURNS = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
               5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
               8: Image.Transpose.ROTATE_90}


def _exif_turn(image: Image.Image) -> Image.Transpose | None:
    try:
        orientation = image.getexif().get(ExifTags.Base.Orientation)
    except Exception:  # an EXIF block that cannot be parsed is left out, as viewers do
        return None
    return _EXIF_TURNS.get(orientation) if isinstance(orientation, int) else None


def cityscapes_label_for(image: Path) -> Path | None:
    """``<root>/gtFine/<split>/<city>/<id>_gtFine_labelIds.png`` for a
    ``<root>/leftImg8bit/<split>/<city>/<id>_leftImg8bit.png`` image, when that file exists."""
    image = Path(image)
    if not image.name.endswith(CITYSCAPES_IMAGE_SUFFIX + ".png") or len(image.parts) < 4:
        return None
    city, split, kind = image.parent.name, image.parent.parent.name, image.parent.parent.parent.name
    if kind != "leftImg8bit":
        return None
    sample_id = image.name[: -len(CITYSCAPES_IMAGE_SUFFIX + ".png")]
    label = image.parent.parent.parent.parent / "gtFine" / split / city / f"{sample_id}_gtFine_labelIds.png"
    return label if label.is_file() else None


def label_to_train_lut(info) -> np.ndarray:
    """``(256,)`` uint8: label-file value -> train id (ignore elsewhere).

    With export ids (Cityscapes labelIds) the files hold those ids; without, they hold train ids.
    """
    lut = np.full(256, info.ignore_index if 0 <= info.ignore_index < 256 else 255, dtype=np.uint8)
    if info.train_to_label_id is None:
        lut[: info.num_classes] = np.arange(info.num_classes, dtype=np.uint8)
    else:
        for train_id, label_id in enumerate(info.train_to_label_id):
            if 0 <= label_id < 256:
                lut[label_id] = train_id
    return lut


def read_truth(path: Path, info, *, size: tuple[int, int], turn: Image.Transpose | None = None) -> np.ndarray:
    """Train ids ``(H, W)`` of a labelIds PNG for an image predicted at ``size`` (height, width).

    ``turn``: how the image's EXIF orientation turned it. A label drawn on the photo as shown (labelme and CVAT
    turn photos so) fits as it is; one whose size fits only the stored pixels is turned the same way. When both
    fit (a square photo, or a half turn or mirror), it is taken as drawn on the photo as shown, with a warning.
    """
    from segbench.data.png import read_label_png

    path = Path(path)
    if not path.is_file():
        raise DataError(f"label {path} does not exist")
    label = read_label_png(path).numpy()
    if turn is not None:
        turned = np.asarray(Image.fromarray(label).transpose(turn))
        if label.shape != tuple(size) and turned.shape == tuple(size):
            label = turned  # drawn on the stored pixels
        elif label.shape == tuple(size) and turned.shape == tuple(size):
            print(f"warning: {path} is taken as drawn on its image as shown, turned by the image's EXIF"
                  " orientation; if it was drawn on the stored pixels, turn the label file the same way",
                  file=sys.stderr)
    if label.shape != tuple(size):
        raise DataError(f"label {path} is {label.shape[1]}x{label.shape[0]} but its image is {size[1]}x{size[0]}"
                        " (width x height" + ("; shown turned as its EXIF orientation says, and the label fits"
                                              " neither way round" if turn else "")
                        + "); give the label file that belongs to the image")
    _check_label_values(path, label, info)
    return label_to_train_lut(info)[label]


def _check_label_values(path: Path, label: np.ndarray, info) -> None:
    """A label file of other values (train ids where label ids belong, a mask of 0/255, a photo) would be scored
    as mostly ignored, a plausible-looking but meaningless score: refuse it as the dataset readers do."""
    if info.train_to_label_id is None:
        allowed, kind = np.arange(info.num_classes), f"train ids (0..{info.num_classes - 1})"
    else:
        highest = min(max(info.train_to_label_id), 255)  # the files are 8-bit
        allowed, kind = np.arange(highest + 1), f"label ids (0..{highest}, as in *_labelIds.png files)"
    valid = np.zeros(256, dtype=bool)
    valid[allowed] = True
    if 0 <= info.ignore_index < 256:
        valid[info.ignore_index] = True
    bad = np.unique(label[~valid[label]])
    if bad.size:
        raise DataError(f"label {path} holds value(s) {', '.join(map(str, bad[:10].tolist()))}, which are not"
                        f" {kind} nor the ignore value {info.ignore_index}; give the label file that belongs to the"
                        " image, in the ids the run's dataset uses")


def output_stem(image: Path) -> str:
    stem = Path(image).stem
    if stem.endswith(CITYSCAPES_IMAGE_SUFFIX) and len(stem) > len(CITYSCAPES_IMAGE_SUFFIX):
        stem = stem[: -len(CITYSCAPES_IMAGE_SUFFIX)]
    return stem


def predict_image(loaded: LoadedRun, image: torch.Tensor) -> np.ndarray:
    """Train ids ``(H, W)`` uint8 for one ``uint8 (3, H, W)`` image, at the image's full resolution.

    The recipe's eval transforms run first (a ``resize`` there makes the model see a smaller image);
    the logits are up-sampled to the image size before the argmax.
    """
    plan, settings = loaded.plan, loaded.inference
    height, width = image.shape[-2:]
    dummy_mask = torch.zeros((height, width), dtype=torch.uint8)
    image_t, _ = plan.eval_transforms(image, dummy_mask, torch.Generator().manual_seed(0))
    with torch.no_grad():
        pred = predict(loaded.model, image_t[None], label_size=(height, width), config=plan.evaluation,
                       num_classes=loaded.info.num_classes, runtime=settings)
    return pred[0].to(torch.uint8).cpu().numpy()


def _percent(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _save_png(image: Image.Image, path: Path) -> None:
    """Whole or not at all: an interrupted predict leaves no half-written PNG under the final name."""
    atomic_write_bytes(path, lambda handle: image.save(handle, format="png"))


def write_prediction(loaded: LoadedRun, image_path: Path, out: Path, *,
                     label_path: Path | None = None) -> PredictionFiles:
    info = loaded.info
    photo = read_photo(image_path)
    image = photo.pixels
    pred = predict_image(loaded, image)
    rgb = image.permute(1, 2, 0).numpy()
    pred_colours = colorize(pred, info.palette)
    stem = output_stem(image_path)
    files = {kind: out / f"{stem}_{kind}.png" for kind in ("pred", "overlay", "panel")}
    _save_png(palette_png(pred, info.palette), files["pred"])
    _save_png(Image.fromarray(overlay(rgb, pred_colours, alpha=OVERLAY_ALPHA)), files["overlay"])
    if label_path is None:
        return PredictionFiles(Path(image_path), files["pred"], files["overlay"], None, None, None)

    truth = read_truth(label_path, info, size=pred.shape, turn=photo.turn)
    matrix = confusion_matrix(torch.from_numpy(pred), torch.from_numpy(truth), num_classes=info.num_classes,
                              ignore_index=info.ignore_index)
    summary = summarize(matrix, info.class_names)
    valid = truth < info.num_classes
    shown = sorted(set(np.unique(truth[valid]).tolist()) | set(np.unique(pred).tolist()))
    panel = comparison_panel(
        rgb, colorize(truth, info.palette), pred_colours,
        header=f"{stem} · {loaded.name}: mIoU {_percent(summary['mIoU'])},"
               f" pixel accuracy {_percent(summary['pixel_accuracy'])}",
        legend_ids=shown, class_names=info.class_names, palette=info.palette, ignored_shown=not bool(valid.all()))
    _save_png(panel, files["panel"])
    return PredictionFiles(Path(image_path), files["pred"], files["overlay"], files["panel"], Path(label_path),
                           summary)


def predict_files(run_dir: Path, images: Sequence[Path], out: Path, *, labels: Sequence[Path] | None = None,
                  device: str | None = None, registries=None, loaded: LoadedRun | None = None) -> list:
    """Predict each image, video, or folder of them with the checkpoint the run's scores come from (the recipe's
    ``trainer.report_checkpoint``) and write the files to ``out``: a :class:`PredictionFiles` per image, a
    ``VideoPrediction`` per video."""
    if labels and len(labels) != len(images):
        raise SegbenchError(f"--labels gives {len(labels)} label file(s) for {len(images)} image(s); give one"
                            " labelIds PNG per image, in the same order (or none).")
    inputs = expand_inputs(images, out=out)
    if labels and (len(labels) != len(inputs) or any(i.kind != "image" or i.from_folder for i in inputs)):
        raise SegbenchError(f"--labels gives {len(labels)} label file(s) for {len(inputs)} input(s); give one"
                            " labelIds PNG per image file, in the same order (or none; not with folders or videos).")
    outputs = {}
    for item in inputs:
        if item.kind == "image":
            check_image(item.path)
        key = (item.subfolder, output_stem(item.path))
        previous = outputs.setdefault(key, item.path)
        if previous != item.path:
            raise SegbenchError(f"{previous} and {item.path} would both be written as"
                                f" {item.subfolder / key[1]}_*; predict them into different --out folders.")
    label_paths = [Path(p) for p in labels] if labels else \
        [cityscapes_label_for(i.path) if i.kind == "image" else None for i in inputs]
    out = Path(out)
    make_folder(out, "--out")
    if any(i.kind == "video" for i in inputs):
        from segbench.report.video import require_av

        require_av()  # before the model loads
    if loaded is None:
        loaded, _ = load_run(run_dir, registries, device=device)
    results = []
    for item, label in zip(inputs, label_paths):
        folder = out / item.subfolder
        folder.mkdir(parents=True, exist_ok=True)
        if item.kind == "video":
            from segbench.report.video import predict_video

            target = folder / f"{output_stem(item.path)}_overlay.mp4"
            results.append(predict_video(loaded, item.path, target, predict_frame=predict_image, alpha=OVERLAY_ALPHA))
        else:
            results.append(write_prediction(loaded, item.path, folder, label_path=label))
    return results


def predict_command(args, *, registries=None) -> list:
    expand_inputs(args.images)  # a missing file fails before the model loads
    # a run directory: the checkpoint its scores come from, unless --checkpoint says; a file: that checkpoint
    loaded, _ = load_run(args.run_dir, registries, checkpoint=args.checkpoint, device=args.device)
    print(f"predicting with {loaded.checkpoint}", file=sys.stderr)
    started = time.perf_counter()
    results = predict_files(args.run_dir, args.images, args.out, labels=args.labels, registries=registries,
                            loaded=loaded)
    seconds = time.perf_counter() - started
    images = 0
    for files in results:
        if not isinstance(files, PredictionFiles):
            images += files.frames
            print(f"{files.video}: {files.overlay.name} ({files.frames} frames, {files.size[1]}x{files.size[0]})")
            continue
        images += 1
        written = [files.pred, files.overlay] + ([files.panel] if files.panel else [])
        score = ""
        if files.summary is not None:
            score = (f"  (mIoU {_percent(files.summary['mIoU'])}, pixel accuracy"
                     f" {_percent(files.summary['pixel_accuracy'])} against {files.label.name})")
        print(f"{files.image}: {', '.join(p.name for p in written)}{score}")
    pngs = sum(3 if f.panel else 2 for f in results if isinstance(f, PredictionFiles))
    videos = len(results) - sum(isinstance(f, PredictionFiles) for f in results)
    print(f"wrote {pngs} PNG(s){f' and {videos} video(s)' if videos else ''} to {args.out};"
          f" {images} image(s) in {seconds:.1f} s: {images / seconds:.2f} images/s (reading, predicting,"
          " writing)", file=sys.stderr)
    return results
