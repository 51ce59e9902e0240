"""Running an exported ONNX model with onnxruntime as if it were the PyTorch model.

onnx and onnxruntime come with the optional ``export`` extra (``pip install 'segbench[export]'``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from segbench.errors import SegbenchError

INPUT_NAME, OUTPUT_NAME = "image", "logits"


class MissingExtraError(SegbenchError):
    """An optional dependency group is not installed."""


def require_onnx():
    """``(onnx, onnxruntime)``, or an error saying how to install them."""
    try:
        import onnx
        import onnxruntime
    except ImportError as exc:
        raise MissingExtraError(
            f"ONNX export and the onnxruntime backend need the packages onnx and onnxruntime ({exc.name} is not"
            " installed). Install them with: pip install 'segbench[export]'") from None
    return onnx, onnxruntime


def open_session(path: Path, *, threads: int | None = None):
    """An onnxruntime CPU session for ``path`` (``threads``: intra-op threads; default onnxruntime's)."""
    _, ort = require_onnx()
    path = Path(path)
    if not path.is_file():
        raise SegbenchError(f"ONNX file {path} does not exist; write one with `segbench export RUN_DIR --format onnx`")
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for a bad file
        raise SegbenchError(f"onnxruntime cannot load {path}: {str(exc).splitlines()[0][:300]}") from None


class OnnxModel(nn.Module):
    """An ONNX segmentation model behind the PyTorch model's interface: ``(N, 3, H, W)`` float images in,
    ``(N, C, H, W)`` float32 logits out, on the CPU. It has no parameters; ``eval``/``train`` change nothing."""

    def __init__(self, path: Path, *, threads: int | None = None):
        super().__init__()
        self.path = Path(path)
        self.session = open_session(self.path, threads=threads)
        shape = self.session.get_inputs()[0].shape
        self.fixed_size = tuple(shape[2:]) if all(isinstance(v, int) for v in shape[2:]) else None
        self.fixed_batch = shape[0] if isinstance(shape[0], int) else None  # a fixed-size export takes one image

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        size = tuple(images.shape[-2:])
        if self.fixed_size is not None and size != self.fixed_size:
            raise SegbenchError(
                f"{self.path} was exported for {self.fixed_size[0]}x{self.fixed_size[1]} images but gets"
                f" {size[0]}x{size[1]}; export again with --size {size[0]}x{size[1]} or --dynamic")
        array = np.ascontiguousarray(images.detach().float().cpu().numpy())
        step = self.fixed_batch or len(array)
        if len(array) % step:
            raise SegbenchError(f"{self.path} was exported for batches of {step} images but gets {len(array)};"
                                " export again with --dynamic")
        # A batch larger than the export's runs in pieces of its batch size (evaluation batches several images).
        pieces = [self.session.run([OUTPUT_NAME], {INPUT_NAME: array[i:i + step]})[0]
                  for i in range(0, len(array), step)]
        return torch.from_numpy(np.concatenate(pieces) if len(pieces) > 1 else pieces[0])
