"""Exemplar prompts as `MQFormerPredictor` takes them: {name: [(image, region), ...]}, where image
is a BGR (H, W, 3) array, an image file path, or None for the image being segmented (SAM 3's
same-image boxes), and region an xyxy box in that image's pixels or an (H, W) mask of it."""
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from .images import ExemplarImages
from .inputs import Exemplar
from .prompting import prompt_embeddings, prompted_inference, require_exemplar_encoder


def build_exemplar_prompts(reader: ExemplarImages, entries: Mapping[str, Sequence[Tuple]],
                           query_image: np.ndarray, what: str = "exemplars") -> Dict[str, List[Exemplar]]:
    """`Exemplar`s of each named prompt; errors name the prompt and the exemplar's position."""
    query = None
    prompts = {}
    for name, pairs in entries.items():
        if isinstance(pairs, tuple) and len(pairs) == 2 and not isinstance(pairs[0], tuple):
            raise TypeError(f"{what}[{name!r}] must be a list of (image, region) pairs; wrap a single pair in a list")
        if len(pairs) == 0:
            raise ValueError(f"{what}[{name!r}] has no exemplar (K = 0); give at least one (image, box)")
        prompts[name] = []
        for index, pair in enumerate(pairs):
            if len(pair) != 2:
                raise ValueError(f"{what}[{name!r}][{index}] must be an (image, region) pair")
            image, region = pair
            where = f"{what}[{name!r}][{index}]"
            if image is None:  # the image being segmented, resized once
                query = query or reader.from_array(query_image, "original_image")
                prompts[name].append(reader.exemplar(None, region, where, image_tensor=query))
            else:
                prompts[name].append(reader.exemplar(image, region, where))
    return prompts


def predict_with_exemplars(model, cfg, inputs: Dict, original_image: np.ndarray,
                           exemplars: Mapping[str, Sequence[Tuple]],
                           negative_exemplars: Optional[Mapping[str, Sequence[Tuple]]] = None) -> Dict:
    """The model's outputs for one prepared input (its "vocabulary" set by the caller) with the
    exemplar prompts' embeddings in place of their names' text embeddings and negative exemplars
    applied (`prompting.prompted_inference`)."""
    require_exemplar_encoder(model)
    reader = ExemplarImages(cfg)
    negative_exemplars = negative_exemplars or {}
    unknown = [n for n in negative_exemplars if n not in inputs["vocabulary"]]
    if unknown:
        raise ValueError(f"negative_exemplars name prompts that are neither prompts nor exemplar prompts: {unknown}")
    device = inputs["image"].device
    with torch.no_grad():
        positive = prompt_embeddings(model, _to(build_exemplar_prompts(reader, exemplars, original_image), device))
        negative = prompt_embeddings(model, _to(build_exemplar_prompts(
            reader, negative_exemplars, original_image, "negative_exemplars"), device))
        return prompted_inference(model, [inputs], positive, negative)[0]


def _to(prompts: Dict[str, List[Exemplar]], device) -> Dict[str, List[Exemplar]]:
    """Exemplar images on the model's device; tensors shared by several exemplars stay shared."""
    moved = {}
    return {name: [Exemplar(moved.setdefault(id(e.image), e.image.to(device)), e.box, e.mask) for e in exemplars]
            for name, exemplars in prompts.items()}
