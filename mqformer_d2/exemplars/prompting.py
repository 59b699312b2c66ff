"""Exemplar prompts at inference: embed them with the model's exemplar encoder, then segment with
text, exemplar and negative-exemplar prompts in one call.

An exemplar prompt is a name (e.g. "part 4711") with K >= 1 exemplars; its pooled embedding takes
the place of the name's text embedding, so it goes through query selection and the class head as
a text would. Negative exemplars of a prompt (text or exemplar) are pooled into a hidden prompt
of their own; the rule: a query whose class logit for the negative prompt exceeds its logit for the
positive one is not that prompt's (its logit for it is lowered by `NEGATIVE_SUPPRESSION`, which
drops it from the instance ranking and from the semantic and panoptic outputs).
"""
import logging
from typing import Dict, List, Mapping, Optional, Sequence

import torch
from torch import Tensor

from .inputs import Exemplar
from .regions import pool_regions

logger = logging.getLogger(__name__)

# Images encoded per backbone pass: bounds the memory of prompts with thousands of exemplars.
IMAGES_PER_CHUNK = 16
# Logit subtracted from a prompt's logit where a query matches the prompt's negatives better.
NEGATIVE_SUPPRESSION = 1e4
_NEGATIVE_PREFIX = "\x00negative exemplars of "


def require_exemplar_encoder(model):
    """The model's exemplar encoder, or a ValueError saying how to get one."""
    encoder = getattr(model, "exemplar_encoder", None)
    if encoder is None:
        raise ValueError("this model has no exemplar encoder: exemplar prompts need a model built with "
                         "MODEL.MQFORMER.EXEMPLARS.ENABLED True and weights that trained it "
                         "(the exemplar stage, `make exemplars`)")
    return encoder


def exemplar_regions(model, exemplars: Sequence[Exemplar], images_per_chunk: int = IMAGES_PER_CHUNK) -> Tensor:
    """(K, M, C) read-outs of K exemplars (any image sizes; exemplars sharing an image tensor
    encode it once), `images_per_chunk` images per backbone pass."""
    encoder = require_exemplar_encoder(model)
    image_ids: Dict[int, int] = {}
    images: List[Tensor] = []
    for exemplar in exemplars:
        if id(exemplar.image) not in image_ids:
            image_ids[id(exemplar.image)] = len(images)
            images.append(exemplar.image)
    owner = torch.tensor([image_ids[id(e.image)] for e in exemplars], dtype=torch.int64)
    regions = [None] * len(exemplars)
    for start in range(0, len(images), images_per_chunk):
        chunk = images[start:start + images_per_chunk]
        members = torch.nonzero((owner >= start) & (owner < start + len(chunk))).flatten().tolist()
        pooled = _chunk_regions(model, chunk, [exemplars[i] for i in members], owner[members] - start,
                                encoder.grid_size)
        for row, index in enumerate(members):
            regions[index] = pooled[row]
    return torch.stack(regions)


def _chunk_regions(model, images: List[Tensor], exemplars: List[Exemplar], image_index: Tensor,
                   grid_size: int) -> Tensor:
    """Read-outs (k, M, C) of the exemplars on one chunk of images (their indices `image_index`)."""
    padded, padding_mask = model.preprocess_image([{"image": image} for image in images])
    pixel = model.pixel_decoder(model.backbone(padded.tensor), padding_mask)
    device = padded.tensor.device
    boxes = torch.stack([e.box for e in exemplars]).to(device)
    masks = None
    if any(e.mask is not None for e in exemplars):
        masks = torch.zeros(len(exemplars), *padded.tensor.shape[-2:], device=device)
        for row, exemplar in enumerate(exemplars):
            if exemplar.mask is None:  # a box exemplar among mask exemplars: its box as its mask
                x0, y0, x1, y1 = exemplar.box.round().int().tolist()
                masks[row, y0:y1, x0:x1] = 1
            else:
                masks[row, :exemplar.mask.shape[0], :exemplar.mask.shape[1]] = exemplar.mask.to(device)
    return pool_regions(pixel, padded.tensor.shape[-1], boxes, image_index.to(device), masks, grid_size)


def prompt_embeddings(model, prompts: Mapping[str, Sequence[Exemplar]]) -> Dict[str, Tensor]:
    """Each prompt's (C,) embedding from its K >= 1 exemplars (read out in one chunked pass)."""
    encoder = require_exemplar_encoder(model)
    for name, exemplars in prompts.items():
        if len(exemplars) == 0:
            raise ValueError(f"exemplar prompt {name!r} has no exemplar (K = 0); give at least one")
    if not prompts:
        return {}
    flat = [e for exemplars in prompts.values() for e in exemplars]
    regions = exemplar_regions(model, flat)
    sizes = [len(exemplars) for exemplars in prompts.values()]
    pooled = encoder(list(torch.split(regions, sizes)))
    return dict(zip(prompts, pooled))


def prompted_inference(model, batched_inputs: List[Dict], embeddings: Mapping[str, Tensor],
                       negatives: Optional[Mapping[str, Tensor]] = None) -> List[Dict]:
    """`model.inference` where the texts named in `embeddings` use those (C,) embeddings instead of
    their text embeddings, and prompts named in `negatives` are suppressed where a query matches
    their negative embedding better (module docstring). Every input needs a "vocabulary" holding
    the prompt names; outputs index that vocabulary."""
    negatives = dict(negatives or {})
    hidden = {name: _NEGATIVE_PREFIX + name for name in negatives}
    vocabularies = []
    for index, x in enumerate(batched_inputs):
        vocabulary = list(x.get("vocabulary", []))
        missing = [n for n in list(embeddings) + list(negatives) if n not in vocabulary]
        if missing:
            raise ValueError(f"batched_inputs[{index}]['vocabulary'] lacks the prompts {missing}")
        vocabularies.append(vocabulary + [hidden[n] for n in negatives])
    encoded = model.encode(batched_inputs, vocabularies=vocabularies)
    text = _replace_embeddings(encoded.text, dict(embeddings, **{hidden[n]: v for n, v in negatives.items()}))
    outputs = model.decoder(encoded.pixel, text)
    if model.region_classifier is not None and model.region_classifier.test_weight > 0:
        outputs["pred_logits"] = model.region_classifier.fuse(
            outputs, encoded.pixel.mask_features, encoded.pixel.mask_valid_ratio, text)
    position = {t: i for i, t in enumerate(text.texts)}
    for name in negatives:
        outputs["pred_logits"] = suppress_negatives(outputs["pred_logits"], position[name], position[hidden[name]])
    visible = [ids[:len(ids) - len(negatives)] for ids in text.local_to_union]
    return model.postprocess(outputs, batched_inputs, encoded.images, text._replace(local_to_union=visible))


def _replace_embeddings(text, replacements: Mapping[str, Tensor]):
    """The `TextBatch` with the rows of the texts named in `replacements` replaced."""
    embeddings = text.embeddings.clone()
    for index, name in enumerate(text.texts):
        if name in replacements:
            embeddings[index] = replacements[name].to(embeddings)
    return text._replace(embeddings=embeddings)


def suppress_negatives(logits: Tensor, positive: int, negative: int) -> Tensor:
    """logits (B, Q, T): where column `negative` exceeds column `positive`, lower the positive one
    by NEGATIVE_SUPPRESSION (a new tensor)."""
    logits = logits.clone()
    beaten = logits[..., negative] > logits[..., positive]
    logits[..., positive] = torch.where(beaten, logits[..., positive] - NEGATIVE_SUPPRESSION, logits[..., positive])
    return logits
