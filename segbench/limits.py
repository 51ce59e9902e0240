"""Sane bounds shared by recipe fields and command-line options (no imports: the CLI reads them at start-up)."""

SEED_MAX = 2**32 - 1  # numpy's seeds are 32-bit
IMAGE_SIDE_MAX = 16384  # pixels along one side of an image, crop or window

# Generated synthetic cities (``segbench synth``, dataset ``synthetic_city``)
SYNTH_MIN_SIZE = (32, 64)  # (height, width)
SYNTH_MAX_SIZE = (4096, 8192)  # 4x Cityscapes' resolution
SYNTH_MAX_IMAGES = 100_000  # per split
SYNTH_DEFAULT_COUNTS = {"train": 120, "val": 30, "train_extra": 60}  # `segbench synth`'s images per split
