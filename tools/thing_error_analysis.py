#!/usr/bin/env python
"""Where do thing predictions fail: finding the object, or naming it? (main job diagnostics)

For every thing target (an annotation with a box) of a labelled dataset, the trained model's final
decoder layer is matched to the targets with the training matcher (as in training, with the whole
class list in every image's vocabulary), and four shares are reported, in %:

* ``localised``: some query's mask has IoU >= 0.5 with the target (class ignored);
* ``matched_mask_ok``: the query matched to it has mask IoU >= 0.5;
* ``matched_class_ok``: the matched query's highest-scoring text is the target's class;
* ``matched_both_ok``: both, i.e. what a true positive at IoU 0.5 needs.

Mask IoUs are computed at the mask head's resolution (stride 4), thresholded at probability 0.5.

With ``--probe-dataset`` (e.g. mqformer_shapes_train) it also asks where the naming fails. A
linear softmax classifier over the thing classes is fitted on the probe dataset's things, and its
accuracy (%) on them ("fit") and on the analysed dataset's things ("eval") is reported, for
``queries`` (the unit vectors that the class head compares with the texts: the final layer's
matched queries, projected and L2-normalised) and for each backbone level (its feature map averaged
under the thing's ground-truth mask). A query probe no better than ``matched_class_ok`` says the
queries do not carry the class; backbone probes as poor say the image features do not either.
``thing_text_cosine`` is the mean cosine similarity between the class head's embeddings of two
different thing class names (1: the texts cannot tell the classes apart).

    .venv/bin/python tools/thing_error_analysis.py --run-dir output/shapes/run_<time> \\
        [--dataset mqformer_shapes_val] [--max-images 200] \\
        [--probe-dataset mqformer_shapes_train --probe-images 400]
"""
import argparse
import json
import logging
import random
import sys
from contextlib import contextmanager
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.modeling import build_model
from detectron2.utils.logger import setup_logger

import mqformer_d2  # noqa: F401  (registers the model and the datasets)
from mqformer_d2.data import UnifiedDatasetMapper
from mqformer_d2.engine import build_config
from mqformer_d2.modeling import MQFormerCheckpointer

logger = logging.getLogger("thing_error_analysis")
SHARES = ("localised", "matched_mask_ok", "matched_class_ok", "matched_both_ok")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True, help="a training run's folder (config.yaml, model_final.pth)")
    parser.add_argument("--dataset", default="mqformer_shapes_val", help="labelled dataset with thing boxes")
    parser.add_argument("--max-images", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--probe-dataset", default=None,
                        help="labelled dataset to fit the linear probe on (default: no probe)")
    parser.add_argument("--probe-images", type=int, default=400)
    return parser.parse_args(argv)


def mask_ious(mask_logits: torch.Tensor, target_masks: torch.Tensor) -> torch.Tensor:
    """(Q, h, w) mask logits, (K, H, W) bool targets -> (Q, K) IoU at the logits' resolution."""
    targets = F.interpolate(target_masks[None].float(), size=mask_logits.shape[-2:], mode="bilinear",
                            align_corners=False)[0] > 0.5
    predicted = mask_logits.sigmoid() > 0.5
    intersection = (predicted[:, None] & targets[None]).flatten(2).sum(-1).float()
    union = (predicted[:, None] | targets[None]).flatten(2).sum(-1).float()
    return intersection / union.clamp(min=1)


@contextmanager
def captured_features(model):
    """Captures, at each forward call: the backbone's feature maps ("backbone": {level: (B, C, H, W)})
    and the class head's input queries ("queries": (B, Q, C)); after `model.final_layer_matching`
    the latter are the final decoder layer's (the head's last call)."""
    captured = {}
    handles = [
        model.backbone.register_forward_hook(lambda module, inputs, output: captured.update(backbone=output)),
        model.decoder.heads.classifier.register_forward_hook(
            lambda module, inputs, output: captured.update(queries=inputs[0])),
    ]
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def class_features(model, queries: torch.Tensor) -> torch.Tensor:
    """(..., C) queries -> (..., C) the unit vectors the class head compares with the texts."""
    return F.normalize(model.decoder.heads.classifier.query_projection(queries), dim=-1)


def mask_pooled(feature_map: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """(C, h, w) feature map, (K, H, W) bool masks -> (K, C) unit vectors: the map averaged under
    each mask (resized to the map by area, so a mask smaller than a cell still counts)."""
    weights = F.interpolate(masks[None].float(), size=feature_map.shape[-2:], mode="area")[0]
    weights = weights / weights.flatten(1).sum(-1).clamp(min=1e-6)[:, None, None]
    return F.normalize(torch.einsum("khw,chw->kc", weights, feature_map), dim=-1)


# Probe features: source ("queries" or a backbone level) -> [(feature (C,), class name)].
ProbeFeatures = Dict[str, List[Tuple[torch.Tensor, str]]]


def count_batch(model, batch: List[Dict], counts: Dict[str, int], features: Optional[ProbeFeatures] = None) -> None:
    """Add one batch's thing targets to `counts` (SHARES and "things"); with `features`, also append
    each matched thing's probe features (see `ProbeFeatures`)."""
    with captured_features(model) as captured:
        outputs, targets, indices = model.final_layer_matching(batch)
    for b, (output, target, (query_index, target_index)) in enumerate(zip(outputs, targets, indices)):
        ious = mask_ious(output["pred_masks"], target["masks"])
        predicted_text = output["pred_logits"].argmax(-1)
        pooled = ({level: mask_pooled(maps[b], target["masks"]) for level, maps in captured["backbone"].items()}
                  if features is not None else {})
        for query, k in zip(query_index.tolist(), target_index.tolist()):
            if not bool(target["has_box"][k]):
                continue  # stuff
            mask_ok = float(ious[query, k]) >= 0.5
            class_ok = int(predicted_text[query]) == int(target["labels"][k])
            counts["things"] += 1
            counts["localised"] += float(ious[:, k].max()) >= 0.5
            counts["matched_mask_ok"] += mask_ok
            counts["matched_class_ok"] += class_ok
            counts["matched_both_ok"] += mask_ok and class_ok
            if features is not None:
                name = output["texts"][int(target["labels"][k])]
                features.setdefault("queries", []).append((class_features(model, captured["queries"][b, query]), name))
                for level, level_features in pooled.items():
                    features.setdefault(level, []).append((level_features[k], name))


def analyse(model, records: List[Dict], batch_size: int, image_format: str,
            features: Optional[ProbeFeatures] = None) -> Dict[str, float]:
    """The shares (%) over the thing targets of `records` (unified dicts with "dataset_name"),
    loaded as training targets at their original size, every class name in each vocabulary.
    With `features`, the matched things' probe features are added to it."""
    mapper = UnifiedDatasetMapper(True, augmentations=[], image_format=image_format,
                                  num_negative_texts=1000, rng=random.Random(0))
    counts = dict.fromkeys(("things", *SHARES), 0)
    torch.manual_seed(0)  # the matcher's mask cost samples random points: same seed, same matching
    with torch.no_grad():
        for start in range(0, len(records), batch_size):
            count_batch(model, [mapper(r) for r in records[start: start + batch_size]], counts, features)
    things = max(counts["things"], 1)
    return dict({share: 100.0 * counts[share] / things for share in SHARES}, things=counts["things"])


def linear_probe(fit: List[Tuple[torch.Tensor, str]], evaluate: List[Tuple[torch.Tensor, str]],
                 steps: int = 500) -> Dict[str, float]:
    """Fit a softmax classifier (weight-decayed, Adam, full batch) to `fit`'s (feature, class name)
    pairs; its accuracy (%) on `fit` and on `evaluate` (things of classes unseen in `fit` count as
    wrong)."""
    classes = sorted({name for _, name in fit})
    x_fit = torch.stack([feature for feature, _ in fit])
    y_fit = torch.tensor([classes.index(name) for _, name in fit])
    classifier = torch.nn.Linear(x_fit.shape[1], len(classes))
    optimizer = torch.optim.Adam(classifier.parameters(), lr=0.05, weight_decay=1e-4)
    with torch.enable_grad():
        for _ in range(steps):
            loss = F.cross_entropy(classifier(x_fit), y_fit)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    def accuracy(pairs):
        with torch.no_grad():
            predicted = classifier(torch.stack([feature for feature, _ in pairs])).argmax(-1).tolist()
        return 100.0 * sum(classes[p] == name for p, (_, name) in zip(predicted, pairs)) / len(pairs)

    return {"fit": accuracy(fit), "eval": accuracy(evaluate), "things": len(fit)}


def text_cosine(model, class_names: List[str]) -> float:
    """Mean cosine similarity between the class head's embeddings of two different class names."""
    with torch.no_grad():
        texts = F.normalize(model.text_encoder(class_names), dim=-1)
    cosine = texts @ texts.T
    off_diagonal = ~torch.eye(len(class_names), dtype=torch.bool, device=cosine.device)
    return float(cosine[off_diagonal].mean())


def dataset_records(name: str, max_images: int) -> List[Dict]:
    return [dict(r, dataset_name=name) for r in DatasetCatalog.get(name)[:max_images]]


def main(argv=None) -> Dict:
    args = parse_args(argv)
    setup_logger(name="thing_error_analysis")
    cfg = build_config(f"{args.run_dir}/config.yaml", cpu=True)
    model = build_model(cfg)
    MQFormerCheckpointer(model).load(f"{args.run_dir}/model_final.pth")
    model.eval()
    probing = args.probe_dataset is not None
    evaluated = {} if probing else None
    shares = analyse(model, dataset_records(args.dataset, args.max_images), args.batch_size, cfg.INPUT.FORMAT,
                     evaluated)
    thing_classes = MetadataCatalog.get(args.dataset).get("thing_classes")
    if thing_classes:  # a dataset registered without class names has no texts to compare
        shares["thing_text_cosine"] = text_cosine(model, list(thing_classes))
    if probing:
        fit = {}
        analyse(model, dataset_records(args.probe_dataset, args.probe_images), args.batch_size,
                cfg.INPUT.FORMAT, fit)
        shares["linear_probe"] = {source: linear_probe(fit[source], evaluated[source]) for source in fit}
    logger.info("thing targets of %s (%%):\n%s", args.dataset, json.dumps(shares, indent=2))
    return shares


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
