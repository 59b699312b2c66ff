"""The exemplar stage: train the exemplar encoder (head + pooling) of a trained MQ-Former whose
other weights stay frozen, on training images where a share of the classes' text embeddings are
replaced by the pooled embeddings of K exemplars (K drawn from 1..max_k) of that class taken from
other training images; the main job's matching and losses apply unchanged. Beside them, an
alignment loss (weight `align_weight`; 0 = off) classifies each pooled prompt among the classes'
text embeddings (cross-entropy of the class head's scale times their cosines): with the main
losses alone the encoder settles on one class-agnostic "object" embedding for every class
(docs/results.md, the exemplar prompts), since an exemplar prompt competes there mostly with
fixed text rows.

Frozen backbone and pixel decoder make each object's read-out a constant, so the exemplars come
from a read-out cache (`cache.py`); denoising queries are left out (their content is built from
the text embeddings and would not change what the class head learns about the prompts)."""
import logging
import time
from typing import Dict, List, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..modeling.criterion import batch_targets
from .sampling import ClassSampler

logger = logging.getLogger(__name__)


class StageSettings(NamedTuple):
    """iterations: optimizer steps; exemplar_share: probability that a class text of a batch is
    replaced by an exemplar prompt; max_k: K is drawn from 1..max_k; lr: AdamW learning rate;
    seed: the exemplar draws' seed; align_weight: weight of the text-alignment loss."""

    iterations: int = 500
    exemplar_share: float = 0.5
    max_k: int = 5
    lr: float = 1e-3
    seed: int = 0
    align_weight: float = 1.0


def freeze_all_but_exemplar_encoder(model) -> List[torch.nn.Parameter]:
    """Freeze every parameter except the exemplar encoder's; its parameters."""
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    trainable = list(model.exemplar_encoder.parameters())
    for parameter in trainable:
        parameter.requires_grad_(True)
    return trainable


def exemplar_text_batch(model, text, batch_image_ids, cache: Dict, sampler: ClassSampler,
                        settings: StageSettings, generator: torch.Generator):
    """The batch's `TextBatch` with, per class text and with probability exemplar_share, the
    embedding replaced by the pooled embedding of K exemplars from other images; the (P, C) pooled
    prompts (None when P = 0) and their (P,) class indices (into cache["classes"])."""
    class_index = {name: i for i, name in enumerate(cache["classes"])}
    rows, regions, class_ids = [], [], []
    for row, name in enumerate(text.texts):
        if name not in class_index or torch.rand((), generator=generator) >= settings.exemplar_share:
            continue
        k = int(torch.randint(1, settings.max_k + 1, (), generator=generator))
        drawn = sampler.draw(class_index[name], k, batch_image_ids)
        if drawn is not None:
            rows.append(row)
            class_ids.append(class_index[name])
            regions.append(cache["regions"][drawn].to(text.embeddings.device))
    if not rows:
        return text, None, torch.zeros(0, dtype=torch.int64)
    prompts = model.exemplar_encoder(regions)
    embeddings = text.embeddings.detach().clone()
    embeddings[torch.tensor(rows)] = prompts.to(embeddings.dtype)
    return text._replace(embeddings=embeddings), prompts, torch.tensor(class_ids)


def alignment_loss(model, prompts: Tensor, class_ids: Tensor, classes: List[str]) -> Tensor:
    """Cross-entropy of each pooled prompt (P, C) among the classes' text embeddings, with the
    class head's logit scale on the cosines (the resolution the class head itself has)."""
    with torch.no_grad():
        texts = F.normalize(model.text_encoder(classes, use_templates=False), dim=-1)
        scale = model.decoder.heads.classifier.logit_scale
    logits = scale * F.normalize(prompts, dim=-1) @ texts.T
    return F.cross_entropy(logits, class_ids.to(logits.device))


def train_exemplar_stage(model, data_loader, cache: Dict, settings: StageSettings) -> List[Dict]:
    """Train `model.exemplar_encoder` in place for settings.iterations batches of `data_loader`
    (mapped training inputs with "image_id"); returns a per-iteration log (loss, exemplar prompts)."""
    trainable = freeze_all_but_exemplar_encoder(model)
    optimizer = torch.optim.AdamW(trainable, lr=settings.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, settings.iterations)
    generator = torch.Generator().manual_seed(settings.seed)
    sampler = ClassSampler(cache["class_ids"], cache["image_ids"], generator)
    model.train()
    model.backbone.eval()  # frozen: normalisation statistics must not move
    model.pixel_decoder.eval()
    history, start, loader = [], time.perf_counter(), iter(data_loader)
    for iteration in range(settings.iterations):
        loss, prompts = _step(model, next(loader), cache, sampler, settings, generator)
        if loss is not None:
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        schedule.step()
        history.append({"iteration": iteration, "loss": None if loss is None else float(loss.detach()), "prompts": prompts})
        if (iteration + 1) % 50 == 0:
            recent = [h["loss"] for h in history[-50:] if h["loss"] is not None]
            logger.info("exemplar stage: iteration %d/%d, loss %.3f, %.2f s/iteration", iteration + 1,
                        settings.iterations, sum(recent) / max(len(recent), 1),
                        (time.perf_counter() - start) / (iteration + 1))
    model.eval()
    return history


def _step(model, batch, cache, sampler, settings, generator):
    """One batch: (summed weighted losses or None when no prompt was an exemplar prompt, count)."""
    with torch.no_grad():
        encoded = model.encode(batch)
    image_ids = [int(x["image_id"]) for x in batch]
    text, prompts, class_ids = exemplar_text_batch(model, encoded.text, image_ids, cache, sampler, settings,
                                                   generator)
    if prompts is None:
        return None, 0
    targets = batch_targets(batch, text.local_to_union, tuple(encoded.images.tensor.shape[-2:]), model.device)
    outputs = model.decoder(encoded.pixel, text, None)
    loss = sum(model.criterion(outputs, targets, text, None).values())
    if settings.align_weight > 0:
        loss = loss + settings.align_weight * alignment_loss(model, prompts, class_ids, cache["classes"])
    return loss, len(class_ids)
