"""segbench: train, evaluate and compare semantic segmentation models on driving scenes."""
import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("segbench")
