"""A synthetic Cityscapes: procedurally drawn street scenes written as a real Cityscapes directory tree.

Scenes are built in 3-D street coordinates and projected through a pinhole camera: sky, facades with windows,
a road with lane marks, sidewalks, trees, poles with signs and signals, parked and moving vehicles, people and
cyclists, plus Cityscapes' void classes (ego vehicle, borders, static and dynamic objects). Labels are exact per
pixel (``gtFine``); ``gtCoarse`` is derived the way coarse polygons look. Colours overlap across classes (some
objects have typical colours, as buses and trams have liveries), so shape, position and context are needed: a
colour lookup table scores below 0.2 mIoU on val.
"""
from segbench.synth.tree import (
    CITIES,
    COMPLETE_MARKER,
    GENERATOR_VERSION,
    GenerationReport,
    generate_city,
    image_stem,
    is_complete,
    read_marker,
)

__all__ = ["CITIES", "COMPLETE_MARKER", "GENERATOR_VERSION", "GenerationReport", "generate_city", "image_stem",
           "is_complete", "read_marker"]
