"""Loading weights files into MQ-Former (as detectron2 keeps `detectron2.checkpoint`).

`MQFormerCheckpointer` (checkpointer.py) is the one loader: it reads a file without running code
from it (files.py), recognises its format and renames its tensors into MQ-Former's names
(formats.py, with the Mask DINO and Swin maps in maskdino.py and swin.py, each map a `Conversion`),
and logs a `LoadReport` per load (report.py).
"""
from .checkpointer import MQFormerCheckpointer, WeightsMismatchError, check_weights_path
from .conversion import Conversion
from .files import WeightsFileError, read_weights_file
from .formats import convert_checkpoint, detect_format
from .report import COMPONENTS, LoadReport, component_of, group_names

__all__ = ["MQFormerCheckpointer", "WeightsMismatchError", "check_weights_path", "Conversion", "WeightsFileError", "read_weights_file",
           "convert_checkpoint", "detect_format", "COMPONENTS", "LoadReport", "component_of", "group_names"]
