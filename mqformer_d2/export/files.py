"""The files of an export, in one folder:

    model.onnx (or model.ts)   the graph (`ExportableMQFormer`)
    text_embeddings.npy        (T, C) float32 embeddings of the vocabulary (plain .npy, read with
                               allow_pickle=False)
    export.json                the vocabulary's names and thing/stuff flags, the input settings
                               (channel order, test-time resize), the post-processing thresholds
"""
import json
import os
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..modeling.meta_arch.postprocessing import PostprocessSettings

FORMAT_VERSION = 1
SETTINGS_FILE = "export.json"
EMBEDDINGS_FILE = "text_embeddings.npy"
GRAPH_FILES = {"onnx": "model.onnx", "torchscript": "model.ts"}


@dataclass
class ExportedVocabulary:
    """The texts the export can be prompted with.

    names: T texts; is_thing: T flags (False = stuff in panoptic outputs); embeddings: (T, C) float32.
    """

    names: List[str]
    is_thing: List[bool]
    embeddings: np.ndarray

    def __post_init__(self):
        if not self.names:
            raise ValueError("the export vocabulary is empty: give at least one class name or sentence")
        if len(set(self.names)) != len(self.names):
            duplicates = sorted({name for name in self.names if self.names.count(name) > 1})
            raise ValueError(f"the export vocabulary repeats {duplicates}")
        if len(self.is_thing) != len(self.names) or self.embeddings.shape[0] != len(self.names):
            raise ValueError(f"the export vocabulary has {len(self.names)} names, {len(self.is_thing)} thing flags "
                             f"and {self.embeddings.shape[0]} embeddings")

    def select(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), C) embeddings of `texts`, in their order; every text must be exported."""
        index = {name: i for i, name in enumerate(self.names)}
        missing = [text for text in texts if text not in index]
        if missing:
            raise KeyError(f"prompts {missing} were not exported; the export knows {self.names} "
                           "(export again with them in --vocabulary)")
        return self.embeddings[[index[text] for text in texts]]

    def things(self, texts: Sequence[str]) -> List[bool]:
        flags = dict(zip(self.names, self.is_thing))
        return [flags[text] for text in texts]


@dataclass
class ExportFiles:
    """An export folder's settings (export.json) and vocabulary."""

    folder: str
    graph_format: str
    vocabulary: ExportedVocabulary
    input_format: str
    min_size_test: int
    max_size_test: int
    postprocess: PostprocessSettings
    task: str
    size_divisibility: int
    fixed_input_size: Optional[List[int]] = None  # (h, w) when the graph only takes that size

    @property
    def graph_path(self) -> str:
        return os.path.join(self.folder, GRAPH_FILES[self.graph_format])

    def write_settings(self) -> None:
        """Write export.json and text_embeddings.npy (the graph is written by the exporter)."""
        np.save(os.path.join(self.folder, EMBEDDINGS_FILE), self.vocabulary.embeddings.astype(np.float32))
        settings = {
            "format_version": FORMAT_VERSION, "graph_format": self.graph_format,
            "graph": GRAPH_FILES[self.graph_format], "text_embeddings": EMBEDDINGS_FILE,
            "vocabulary": self.vocabulary.names, "is_thing": self.vocabulary.is_thing,
            "input_format": self.input_format, "min_size_test": self.min_size_test,
            "max_size_test": self.max_size_test, "postprocess": asdict(self.postprocess), "task": self.task,
            "size_divisibility": self.size_divisibility,
            "fixed_input_size": self.fixed_input_size,
        }
        with open(os.path.join(self.folder, SETTINGS_FILE), "w") as f:
            json.dump(settings, f, indent=2)

    @classmethod
    def load(cls, folder: str) -> "ExportFiles":
        """Read an export folder; errors name the file or key at fault."""
        path = os.path.join(folder, SETTINGS_FILE)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} does not exist: {folder!r} is not an export folder "
                                    "(tools/deploy/export_model.py writes one)")
        with open(path) as f:
            settings = json.load(f)
        _check_keys(settings, path)
        if settings["format_version"] != FORMAT_VERSION:
            raise ValueError(f"{path}: format_version {settings['format_version']} is not {FORMAT_VERSION}")
        embeddings_path = os.path.join(folder, settings["text_embeddings"])
        if not os.path.isfile(embeddings_path):
            raise FileNotFoundError(f"{embeddings_path} (named by {path}) does not exist")
        vocabulary = ExportedVocabulary(list(settings["vocabulary"]), [bool(x) for x in settings["is_thing"]],
                                        np.load(embeddings_path, allow_pickle=False))
        files = cls(folder, settings["graph_format"], vocabulary, settings["input_format"], settings["min_size_test"],
                    settings["max_size_test"], PostprocessSettings(**settings["postprocess"]), settings["task"],
                    settings["size_divisibility"], settings.get("fixed_input_size"))
        if not os.path.isfile(files.graph_path):
            raise FileNotFoundError(f"{files.graph_path} (named by {path}) does not exist")
        return files


_REQUIRED_KEYS = ("format_version", "graph_format", "text_embeddings", "vocabulary", "is_thing", "input_format",
                  "min_size_test", "max_size_test", "postprocess", "task", "size_divisibility")


def _check_keys(settings: Dict, path: str) -> None:
    missing = [key for key in _REQUIRED_KEYS if key not in settings]
    if missing:
        raise KeyError(f"{path} lacks the keys {missing}")
    if settings["graph_format"] not in GRAPH_FILES:
        raise ValueError(f"{path}: graph_format {settings['graph_format']!r} is not one of {sorted(GRAPH_FILES)}")
