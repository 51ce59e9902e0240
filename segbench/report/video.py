"""Predictions on a video: every frame through the model, the coloured prediction blended over it,
written as an MP4 (H.264 where the FFmpeg that PyAV bundles has it, else MPEG-4 Part 2).

PyAV comes with the optional ``video`` extra (``pip install 'segbench[video]'``).
"""
from __future__ import annotations

import os
import tempfile
from fractions import Fraction
from pathlib import Path

import attrs
import numpy as np
import torch

from segbench.atomic import new_file_mode
from segbench.errors import DataError, SegbenchError
from segbench.palette import colorize, overlay

CODECS = ("libx264", "mpeg4")


@attrs.frozen
class VideoPrediction:
    video: Path
    overlay: Path
    frames: int
    size: tuple[int, int]  # (H, W)


def require_av():
    try:
        import av
    except ImportError:
        raise SegbenchError("predicting on a video needs PyAV (package av), which is not installed. Install it"
                            " with: pip install 'segbench[video]'") from None
    return av


def _codec(av) -> str:
    return next((name for name in CODECS if name in av.codecs_available), CODECS[-1])


def predict_video(loaded, path: Path, out_path: Path, *, predict_frame, alpha: float) -> VideoPrediction:
    """Write ``out_path`` (atomically): each frame of ``path`` with its prediction blended in.

    ``predict_frame(loaded, image)`` maps a ``uint8 (3, H, W)`` frame to ``(H, W)`` train ids.
    Frames keep their size (an odd side loses its last pixel row/column: the encoders need even sides).
    """
    av = require_av()
    try:
        source = av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise DataError(f"video {path} cannot be opened ({exc})") from None
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".tmp", dir=out_path.parent)
    os.fchmod(fd, new_file_mode())  # mkstemp makes 0o600: the video is shared like the other outputs
    os.close(fd)
    frames, size = 0, None
    try:
        with source, av.open(tmp, mode="w", format="mp4") as sink:
            stream_in = source.streams.video[0] if source.streams.video else None
            if stream_in is None:
                raise DataError(f"{path} holds no video stream")
            rate = stream_in.average_rate or Fraction(25)
            stream_out = None
            for frame in source.decode(stream_in):
                rgb = frame.to_ndarray(format="rgb24")
                if min(rgb.shape[:2]) < 2:
                    raise DataError(f"video {path} has frames of {rgb.shape[1]}x{rgb.shape[0]} pixels; the overlay"
                                    " video (H.264, yuv420p) needs at least 2x2: give a larger video")
                height, width = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2
                rgb = np.ascontiguousarray(rgb[:height, :width])
                if stream_out is None:
                    stream_out = sink.add_stream(_codec(av), rate=rate)
                    stream_out.width, stream_out.height, stream_out.pix_fmt = width, height, "yuv420p"
                    size = (height, width)
                pred = predict_frame(loaded, torch.from_numpy(rgb).permute(2, 0, 1).contiguous())
                blended = overlay(rgb, colorize(pred, loaded.info.palette), alpha=alpha)
                for packet in stream_out.encode(av.VideoFrame.from_ndarray(blended, format="rgb24")):
                    sink.mux(packet)
                frames += 1
            if stream_out is None:
                raise DataError(f"video {path} has no frames")
            for packet in stream_out.encode():
                sink.mux(packet)
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return VideoPrediction(Path(path), out_path, frames, size)
