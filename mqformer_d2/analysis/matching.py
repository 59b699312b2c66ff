"""The final decoder layer's Hungarian matching on labelled inputs, as the training matcher makes it:
which query wins each target (thing-naming diagnosis, `features.py`) and of which type (the query
ablation, tools/query_ablation.py)."""
from typing import Dict, List, Tuple

import torch
from torch import Tensor

from mqformer_d2.modeling.criterion import batch_targets


@torch.no_grad()
def final_layer_matching(model, batched_inputs: List[Dict]) -> Tuple[List[Dict], List[Dict], List[Tuple]]:
    """The final decoder layer's predictions for labelled inputs (no denoising queries, texts
    embedded without prompt templates as in training) and its Hungarian assignment to their targets.

    Args:
        model: an `MQFormer` with its criterion (the matcher), usually in eval mode.
        batched_inputs: as in training ("image", "vocabulary", "instances").

    Returns:
        three lists over the B images: the final layer's "pred_logits" (Q, T) (texts outside the
        image's vocabulary at -inf), "pred_masks" (Q, Hm, Wm), "pred_boxes" (Q, 4), "query_types"
        (Q,) and "texts" (the batch's T texts, shared);
        the targets (`batch_targets`: "labels" (K,) into the same T texts, "masks", "has_box", ...);
        the matcher's (query index, target index) pairs.
    """
    if model.criterion is None:
        raise RuntimeError("final_layer_matching needs the model's criterion (its matcher)")
    encoded = model.encode(batched_inputs, use_templates=False)
    outputs = model.decoder(encoded.pixel, encoded.text)
    text = encoded.text
    targets = batch_targets(batched_inputs, text.local_to_union, tuple(encoded.images.tensor.shape[-2:]),
                            model.device)
    logits = outputs["pred_logits"].masked_fill(~text.valid[:, None, :], float("-inf"))
    per_image = [{"pred_logits": logits[b], "pred_masks": outputs["pred_masks"][b],
                  "pred_boxes": outputs["pred_boxes"][b], "query_types": outputs["query_types"],
                  "texts": text.texts}
                 for b in range(len(batched_inputs))]
    return per_image, targets, model.criterion.match(outputs, targets)


def match_queries(model, batched_inputs: List[Dict]) -> List[Dict[str, Tensor]]:
    """Which query (and of which type) wins each target in the final decoder layer's matching, to
    measure how often learnable vs conditional queries predict thing vs stuff segments.

    Returns:
        per image: "query_type" (M,) int64 (0 learnable, 1 conditional) and "has_box" (M,) bool
        (False for stuff targets) of its M matched targets.
    """
    outputs, targets, indices = final_layer_matching(model, batched_inputs)
    return [{"query_type": output["query_types"][query_index.to(model.device)],
             "has_box": target["has_box"][target_index.to(model.device)]}
            for output, target, (query_index, target_index) in zip(outputs, targets, indices)]
