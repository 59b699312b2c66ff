"""Deployment: the model as an ONNX (or TorchScript) graph, and the small runtime that turns the
graph's raw outputs into the predictor's results.

Data flow: image -> [graph: normalise, pad, backbone, pixel decoder, mixed-query decoder, heads]
-> logits (1, Q, T), mask logits (1, Q, H/4, W/4), boxes (1, Q, 4) -> `postprocessing.task_outputs`
-> Instances / sem_seg / panoptic_seg. The text encoder stays out of the graph: the vocabulary's
embeddings are computed once at export and stored beside it (`ExportedVocabulary`).

- `graph.ExportableMQFormer`: the module that is exported.
- `files`: the files of an export (graph, vocabulary embeddings, settings) and their checks.
- `exporter.export_model`: writes them.
- `runtime.ExportedModel` / `ExportedPredictor`: run them in onnxruntime, with no model code.
"""
from .exporter import export_model
from .files import ExportFiles, ExportedVocabulary
from .graph import ExportableMQFormer

__all__ = ["ExportableMQFormer", "ExportFiles", "ExportedVocabulary", "export_model"]
