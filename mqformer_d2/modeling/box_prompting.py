"""Box-prompted decoding: one mask per (box, text) prompt of a trained MQ-Former, e.g. to turn
box-only annotations into masks (mqformer_d2.synthetic.masks, paper section 3.4).

Each prompt becomes a query exactly as a denoising query is built in training (content = the
projected embedding of its text, anchor = its box), without noise and in a single group. The
matching queries run alongside (prompts see them, they never see the prompts) and their outputs are
ignored.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from mqformer_d2.layers import xyxy_to_cxcywh

from .denoising import build_denoising_queries
from .meta_arch import postprocessing as post
from .meta_arch.vocabulary import check_vocabulary

# The vocabulary of an image without prompts (the union vocabulary needs one text per image).
_PLACEHOLDER_TEXT = "object"


@torch.no_grad()
def predict_masks_for_boxes(model, batched_inputs: List[Dict], boxes: Sequence[Tensor],
                            texts: Sequence[Sequence[str]]) -> List[Dict[str, Tensor]]:
    """One mask per (box, text) prompt. Works in train or eval mode; dropout should be off
    (`model.eval()`).

    Args:
        model: an `MQFormer`.
        batched_inputs: B model inputs ("image" (3, h, w) resized as at test time, optional
            "height", "width": the original size, which defaults to the image's size).
        boxes: B tensors (K_b, 4) XYXY absolute in the original image (height x width).
        texts: B lists of K_b texts, the class name or description of each box.

    Returns:
        B dicts: "masks" (K_b, H, W) bool at the original size, "scores" (K_b,) = probability
        of the prompt's text x mean mask probability inside the mask (as for instances), and
        "mask_probs" (K_b, H, W) float sigmoid mask probabilities.
    """
    if not len(batched_inputs) == len(boxes) == len(texts):
        raise ValueError(f"need one boxes tensor and one text list per image, got {len(batched_inputs)} "
                         f"images, {len(boxes)} box tensors, {len(texts)} text lists")
    targets, vocabularies = _prompt_targets(batched_inputs, boxes, texts, model.device)
    # Denoising content is built from embeddings without templates, as in training.
    encoded = model.encode(batched_inputs, vocabularies=vocabularies, use_templates=False)
    for target, ids in zip(targets, encoded.text.local_to_union):
        target["labels"] = ids[target["labels"]]
    prompts = build_denoising_queries(
        targets, encoded.text.embeddings, encoded.text.valid, num_matching_queries=model.decoder.num_queries,
        dn_query_budget=max(max(len(t["labels"]) for t in targets), 1), label_noise_ratio=0.0,
        box_noise_scale=0.0,
    )
    image_sizes = [tuple(size) for size in encoded.images.image_sizes]
    padded_size = tuple(encoded.images.tensor.shape[-2:])
    if prompts is None:  # no box in the whole batch
        return [_prompt_results(x, size, padded_size, None, None, None, model.device)
                for x, size in zip(batched_inputs, image_sizes)]
    outputs = model.decoder(encoded.pixel, encoded.text, prompts)["dn_outputs"]
    return [
        _prompt_results(x, size, padded_size, outputs["pred_logits"][i], outputs["pred_masks"][i],
                        targets[i]["labels"], model.device)
        for i, (x, size) in enumerate(zip(batched_inputs, image_sizes))
    ]


def _prompt_targets(batched_inputs: List[Dict], boxes: Sequence[Tensor], texts: Sequence[Sequence[str]],
                    device: torch.device) -> Tuple[List[Dict[str, Tensor]], List[List[str]]]:
    """Per image a denoising target ("labels" = local text ids (K,), "boxes" (K, 4) cxcywh
    normalised by the original size, which equals the normalisation by the unpadded resized
    size) and its vocabulary (distinct texts, first-seen order; a placeholder when K = 0)."""
    targets, vocabularies = [], []
    for index, (x, image_boxes, image_texts) in enumerate(zip(batched_inputs, boxes, texts)):
        image_boxes = torch.as_tensor(image_boxes, dtype=torch.float32, device=device).reshape(-1, 4)
        image_texts = check_vocabulary(image_texts, f"texts[{index}]")
        if len(image_texts) != len(image_boxes):
            raise ValueError(f"image {index}: {len(image_boxes)} boxes but {len(image_texts)} texts")
        if "image" not in x:
            raise ValueError(f"batched_inputs[{index}] lacks the key 'image'")
        height, width = x["image"].shape[-2:]
        height, width = x.get("height", height), x.get("width", width)
        scale = image_boxes.new_tensor([width, height, width, height])
        vocabulary = list(dict.fromkeys(image_texts)) or [_PLACEHOLDER_TEXT]
        position = {text: i for i, text in enumerate(vocabulary)}
        labels = torch.tensor([position[t] for t in image_texts], dtype=torch.int64, device=device)
        targets.append({"labels": labels, "boxes": xyxy_to_cxcywh(image_boxes / scale).clamp(0.0, 1.0)})
        vocabularies.append(vocabulary)
    return targets, vocabularies


def _prompt_results(x: Dict, image_size: Tuple[int, int], padded_size: Tuple[int, int], logits: Optional[Tensor],
                    mask_logits: Optional[Tensor], labels: Optional[Tensor], device: torch.device) -> Dict[str, Tensor]:
    """The first K prompt queries of one image (logits (N_dn, T), mask_logits (N_dn, Hm, Wm),
    labels (K,) union text ids) -> masks, scores, mask_probs at the original size."""
    output_size = (x.get("height", image_size[0]), x.get("width", image_size[1]))
    num = 0 if labels is None else len(labels)
    if num == 0:
        return {"masks": torch.zeros(0, *output_size, dtype=torch.bool, device=device),
                "scores": torch.zeros(0, device=device),
                "mask_probs": torch.zeros(0, *output_size, device=device)}
    resize = post.ResizeSpec(padded_size, image_size, output_size)
    probs = resize.resize(mask_logits[:num]).sigmoid()
    masks = probs > 0.5
    class_probs = logits[torch.arange(num, device=labels.device), labels].sigmoid()
    inside = (probs * masks).flatten(1).sum(1) / masks.flatten(1).sum(1).clamp(min=1)
    return {"masks": masks, "scores": class_probs * inside, "mask_probs": probs}
