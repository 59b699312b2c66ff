"""Exemplar-prompted evaluation: a dataset's classes prompted by exemplar sets (from another
split, `sampling.read_exemplar_sets`) instead of their names, scored by the dataset's own
evaluator (mask AP for instance datasets)."""
import logging
from typing import Dict, List, Mapping, Optional

import torch
from detectron2.evaluation import inference_on_dataset
from torch import Tensor, nn

from ..data import load_tagged_dataset_dicts
from ..data.unified_mapper import UnifiedDatasetMapper
from ..evaluation import build_evaluator
from .images import ExemplarImages
from .prompting import prompt_embeddings, prompted_inference
from .sampling import ObjectRecord

logger = logging.getLogger(__name__)


class PromptedModel(nn.Module):
    """`model` at inference with the texts named in `embeddings` replaced by those embeddings
    (an empty mapping: plain text prompts); what `inference_on_dataset` runs."""

    def __init__(self, model, embeddings: Mapping[str, Tensor]):
        super().__init__()
        self.model = model
        self.embeddings = dict(embeddings)

    def forward(self, batched_inputs: List[Dict]) -> List[Dict]:
        return prompted_inference(self.model, batched_inputs, self.embeddings)


def embed_exemplar_sets(model, cfg, sets: Mapping[str, List[List[ObjectRecord]]], k: int,
                        episode: int) -> Dict[str, Tensor]:
    """Each class's prompt embedding from the first `k` exemplars of its `episode`-th set."""
    reader = ExemplarImages(cfg)
    prompts = {name: [reader.exemplar(o.file_name, o.box, f"exemplar {o.file_name} annotation {o.annotation_id}")
                      for o in episodes[episode][:k]] for name, episodes in sets.items()}
    with torch.no_grad():
        return prompt_embeddings(model, prompts)


def evaluate_prompts(model, cfg, dataset_name: str, embeddings: Optional[Mapping[str, Tensor]],
                     output_folder: Optional[str] = None) -> Dict:
    """The evaluator results of `dataset_name` with its classes prompted by `embeddings` (by
    name; None or {} = by their text)."""
    dataset_dicts, _ = load_tagged_dataset_dicts([dataset_name])
    mapper = UnifiedDatasetMapper(cfg, False)
    loader = [[mapper(record)] for record in dataset_dicts]  # single process: 128-pixel images read fast
    evaluator = build_evaluator(cfg, dataset_name, output_folder=output_folder)
    model.eval()
    with torch.no_grad():
        return inference_on_dataset(PromptedModel(model, embeddings or {}), loader, evaluator)


def mask_ap(results: Dict) -> float:
    """The mask AP of an instance evaluation's results ("segm" of COCO, or of a SeginW dataset)."""
    for key in ("segm",):
        if key in results:
            return float(results[key]["AP"])
    for value in results.values():
        if isinstance(value, dict) and "segm" in value:
            return float(value["segm"]["AP"])
    raise KeyError(f"no mask AP ('segm') in the evaluation results {list(results)}")
