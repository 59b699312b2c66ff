"""Weights files: safe reading, format recognition and conversion into MQ-Former's names, and the
load report. `modeling.checkpoint.MQFormerCheckpointer` puts them together."""
from .conversion import Conversion
from .files import WeightsFileError, read_weights_file
from .formats import convert_checkpoint, detect_format
from .report import COMPONENTS, LoadReport, component_of, group_names

__all__ = ["Conversion", "WeightsFileError", "read_weights_file", "convert_checkpoint", "detect_format",
           "COMPONENTS", "LoadReport", "component_of", "group_names"]
