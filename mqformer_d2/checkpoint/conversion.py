"""`Conversion`: a file's tensors renamed into the model's names, plus what was left out and why."""
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Dict, List

from torch import Tensor


@dataclass
class Conversion:
    """tensors: model name -> tensor. origin: model name -> the file's name of that tensor.
    skipped: reason -> file names not converted (they have no counterpart in the model)."""

    tensors: Dict[str, Tensor] = field(default_factory=dict)
    origin: Dict[str, str] = field(default_factory=dict)
    skipped: Dict[str, List[str]] = field(default_factory=lambda: defaultdict(list))

    def add(self, model_name: str, file_name: str, tensor: Tensor) -> None:
        """Put the file's `file_name` tensor at `model_name`."""
        if model_name in self.tensors:
            raise ValueError(f"weights conversion: {file_name} and {self.origin[model_name]} both map to {model_name}")
        self.tensors[model_name] = tensor
        self.origin[model_name] = file_name

    def skip(self, reason: str, file_name: str) -> None:
        self.skipped[reason].append(file_name)

    def update(self, other: "Conversion") -> None:
        """Merge another conversion of other names of the same file."""
        for name, tensor in other.tensors.items():
            self.add(name, other.origin[name], tensor)
        for reason, names in other.skipped.items():
            self.skipped[reason].extend(names)
