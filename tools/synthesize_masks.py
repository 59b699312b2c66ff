#!/usr/bin/env python
"""Synthetic masks from boxes (paper 3.4): turn a registered detection dataset into a segmentation one.

    python tools/synthesize_masks.py --config-file CFG --dataset NAME --output FILE \\
        [--batch-size 4] [--min-quality 0.5] [--num-gpus N] [--overwrite] MODEL.WEIGHTS ckpt.pth

Every box-only annotation of dataset NAME becomes a box prompt of `box_prompting.predict_masks_for_boxes`
(a denoising-style query made from the box and its class name, no noise); its mask is written as
COCO RLE with a `score` (text probability x mean mask probability) and a `quality` (IoU of the
mask's tight box with the prompt box). Masks with quality below --min-quality, and empty ones, are
dropped: their annotation stays in the file as a box-only target (with its score and quality).
Annotations that already have a mask keep it.

Resumable: each process appends the results of every finished batch to
`<FILE>.parts/part-<rank>.jsonl` (flushed per batch); a restart with the same settings skips the
finished images, and the main process merges the parts into FILE (written once, at the end, then
the parts folder is removed). Batches are fixed by the dataset order and --batch-size, whatever the
number of processes, so an interrupted run gives the same file as an uninterrupted one. An existing
FILE is never replaced unless --overwrite is given.

Register the output with `mqformer_d2.data.synthetic.register_synthetic_masks` (logged at the end).
"""
import argparse
import hashlib
import json
import logging
import os
import shutil
import sys
from typing import Dict, List, Sequence, Set

import numpy as np
import pycocotools.mask as mask_util
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.engine import launch
from detectron2.modeling import build_model
from detectron2.structures import BoxMode
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger
from torchvision.ops import box_iou
from tqdm import tqdm

import mqformer_d2  # noqa: F401  (registers the model and the datasets)
from mqformer_d2.data import synthetic
from mqformer_d2.data.images import read_image
from mqformer_d2.data.augmentation import build_augmentations
from mqformer_d2.data.datasets.common import encode_mask
from mqformer_d2.engine import build_config
from mqformer_d2.modeling import MQFormerCheckpointer
from mqformer_d2.modeling.box_prompting import predict_masks_for_boxes

logger = logging.getLogger("mqformer_d2.tools.synthesize_masks")
SETTINGS_FILE = "settings.json"


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True, help="the checkpoint's config")
    parser.add_argument("--dataset", required=True, help="registered dataset whose boxes are prompted")
    parser.add_argument("--output", required=True, help="COCO json to write")
    parser.add_argument("--batch-size", type=int, default=4, help="images per forward pass (per process)")
    parser.add_argument("--min-quality", type=float, default=0.5,
                        help="drop masks whose tight box has a lower IoU with the prompt box")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    parser.add_argument("--cpu", action="store_true", help="run on CPU (MODEL.DEVICE cpu, GPUs hidden)")
    parser.add_argument("--num-gpus", type=int, default=1, help="processes per machine")
    parser.add_argument("--num-machines", type=int, default=1)
    parser.add_argument("--machine-rank", type=int, default=0)
    parser.add_argument("--dist-url", default="auto", help="detectron2 launch's rendezvous url")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config changes: KEY VALUE pairs")
    return parser


def parts_dir(output: str) -> str:
    return output + ".parts"


def run_settings(args, cfg, num_images: int) -> Dict:
    """What must match for a restart to resume a run (the device and process count need not)."""
    model_cfg = cfg.clone()
    model_cfg.defrost()
    model_cfg.MODEL.DEVICE = "any"
    weights = cfg.MODEL.WEIGHTS
    stat = os.stat(weights) if weights and os.path.isfile(weights) else None
    return {
        "dataset": args.dataset, "num_images": num_images, "batch_size": args.batch_size,
        "config_sha256": hashlib.sha256(model_cfg.dump().encode()).hexdigest(),
        "weights": weights, "weights_bytes": stat.st_size if stat else None,
        "weights_mtime_ns": stat.st_mtime_ns if stat else None,
    }


def prepare_parts(args, settings: Dict) -> None:
    """Before any work: refuse to replace --output, and create (or check) the parts folder."""
    synthetic.check_output_path(args.output, args.overwrite)
    folder = parts_dir(args.output)
    path = os.path.join(folder, SETTINGS_FILE)
    if os.path.isfile(path):
        with open(path) as f:
            previous = json.load(f)
        changed = sorted(k for k in set(previous) | set(settings) if previous.get(k) != settings.get(k))
        if changed and not read_parts(folder):
            # A start that failed before finishing any image (e.g. a bad weights file): nothing to
            # keep, so the corrected command starts over instead of being refused.
            logger.info("%s holds no finished image of the earlier run (settings %s): starting over",
                        folder, ", ".join(changed))
            synthetic.write_json_atomic(path, settings)
            return
        if changed:
            raise RuntimeError(f"{folder} holds the progress of a run with other settings ({', '.join(changed)}); "
                               "rerun with the same settings to resume it, or delete that folder to start over")
        logger.info("resuming the run in %s", folder)
        return
    os.makedirs(folder, exist_ok=True)
    synthetic.write_json_atomic(path, settings)


def read_parts(folder: str) -> Dict[int, Dict]:
    """Image index -> its result line, from every part file (an unfinished last line is skipped)."""
    results = {}
    names = sorted(n for n in os.listdir(folder) if n.startswith("part-") and n.endswith(".jsonl"))
    for name in names:
        with open(os.path.join(folder, name)) as f:
            for line in f:
                try:
                    result = json.loads(line)
                except json.JSONDecodeError:
                    logger.warning("%s: skipping an unfinished line (its image is redone)", name)
                    continue
                results[int(result["index"])] = result
    return results


def open_part_file(folder: str, rank: int):
    """This process's part file, opened for appending after cutting any unfinished last line."""
    path = os.path.join(folder, f"part-{rank:03d}.jsonl")
    if os.path.exists(path):
        with open(path, "rb+") as f:
            data = f.read()
            f.truncate(data.rfind(b"\n") + 1)
    return open(path, "a")


def rank_batches(num_images: int, batch_size: int, rank: int, world_size: int) -> List[List[int]]:
    """Global batch g = images [g * B, (g + 1) * B) of the dataset order, run by process g % world."""
    starts = range(0, num_images, batch_size)
    return [list(range(s, min(s + batch_size, num_images)))
            for g, s in enumerate(starts) if g % world_size == rank]


def box_prompts(record: Dict, text_prompts: Sequence[str], dataset: str):
    """The annotations of an image to prompt: box-only, not crowd. Returns (their indices in
    `annotations`, boxes (K, 4) XYXY absolute, texts (K,): the class name, else the first text)."""
    indices, boxes, texts = [], [], []
    for j, ann in enumerate(record.get("annotations", [])):
        if "segmentation" in ann or ann.get("iscrowd", 0) or "bbox" not in ann:
            continue
        if ann.get("category_id") is not None:
            text = text_prompts[ann["category_id"]]
        elif ann.get("texts"):
            text = ann["texts"][0]
        else:
            raise ValueError(f"dataset '{dataset}', image {record['image_id']}: annotation {j} has neither "
                             "category_id nor texts")
        indices.append(j)
        boxes.append(BoxMode.convert(list(ann["bbox"]), ann["bbox_mode"], BoxMode.XYXY_ABS))
        texts.append(text)
    return indices, torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), texts


def model_input(record: Dict, augmentations: T.AugmentationList, image_format: str) -> Dict:
    """The test-time model input of a record: resized image (3, h, w), original height / width."""
    image = read_image(record["file_name"], format=image_format)
    utils.check_image_size(record, image)
    aug_input = T.AugInput(image)
    augmentations(aug_input)
    tensor = torch.as_tensor(np.ascontiguousarray(aug_input.image.transpose(2, 0, 1)))
    return {"image": tensor, "height": int(record["height"]), "width": int(record["width"])}


def box_iou_of_mask(mask: np.ndarray, box: Sequence[float]) -> float:
    """IoU of the tight box of an (H, W) bool mask with an XYXY box; 0 for an empty mask (a
    non-empty mask's box covers at least one pixel, so the union is never 0)."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return 0.0
    tight = torch.tensor([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], dtype=torch.float64)
    return float(box_iou(tight, torch.tensor([box], dtype=torch.float64))[0, 0])


def predict_batch(model, inputs: List[Dict], boxes: List[torch.Tensor], texts: List[List[str]]) -> List[Dict]:
    """One forward pass of box-prompted decoding (a function of its own so tests can interrupt it)."""
    return predict_masks_for_boxes(model, inputs, boxes, texts)


def result_line(index: int, indices: List[int], boxes: torch.Tensor, prediction: Dict) -> Dict:
    """The part-file line of one image: per prompted annotation its RLE mask, score and quality."""
    masks = prediction["masks"].cpu().numpy()
    scores = prediction["scores"].float().cpu().tolist()
    entries = []
    for k, j in enumerate(indices):
        entries.append({"source_index": j, "segmentation": encode_mask(masks[k]),
                        "score": round(scores[k], 6),
                        "quality": round(box_iou_of_mask(masks[k], boxes[k].tolist()), 6)})
    return {"index": index, "masks": entries}


def synthesize_shard(model, cfg, args, dicts: List[Dict], done: Set[int]) -> None:
    """Run this process's batches that are not finished, appending each batch's lines to its part file."""
    rank, world_size = comm.get_rank(), comm.get_world_size()
    batches = rank_batches(len(dicts), args.batch_size, rank, world_size)
    todo = [b for b in batches if not all(i in done for i in b)]
    augmentations = T.AugmentationList(build_augmentations(cfg, is_train=False))
    prompts = list(MetadataCatalog.get(args.dataset).get("text_prompts", None) or [])
    logger.info("process %d/%d: %d of its %d batches to run", rank, world_size, len(todo), len(batches))
    with open_part_file(parts_dir(args.output), rank) as part, torch.no_grad():
        bar = tqdm(total=len(batches), initial=len(batches) - len(todo), desc=f"masks of {args.dataset}",
                   unit="batch", disable=not comm.is_main_process())
        for batch in todo:
            lines, inputs, all_boxes, all_texts, owners = [], [], [], [], []
            for index in batch:
                indices, boxes, texts = box_prompts(dicts[index], prompts, args.dataset)
                lines.append((index, indices, boxes))
                if indices:  # images without a box to prompt need no forward pass
                    inputs.append(model_input(dicts[index], augmentations, cfg.INPUT.FORMAT))
                    all_boxes.append(boxes)
                    all_texts.append(texts)
                    owners.append(index)
            predictions = predict_batch(model, inputs, all_boxes, all_texts) if inputs else []
            predictions = dict(zip(owners, predictions))
            for index, indices, boxes in lines:
                line = result_line(index, indices, boxes, predictions[index]) if indices else {"index": index, "masks": []}
                part.write(json.dumps(line, separators=(",", ":")) + "\n")
            part.flush()
            os.fsync(part.fileno())
            bar.update(1)
        bar.close()


def merged_annotations(dicts: List[Dict], results: Dict[int, Dict], to_dataset_id: Dict[int, int],
                       min_quality: float) -> List[Dict]:
    """Every source annotation in order: box-only ones with their predicted mask (kept when its
    quality reaches min_quality), the others as they were."""
    annotations, kept, dropped = [], 0, 0
    for index, record in enumerate(dicts):
        predicted = {entry["source_index"]: entry for entry in results[index]["masks"]}
        for j, ann in enumerate(record.get("annotations", [])):
            out = synthetic.coco_base_annotation(ann, record["image_id"], to_dataset_id)
            entry = predicted.get(j)
            if entry is not None:
                out.update(score=entry["score"], quality=entry["quality"])
                if entry["quality"] >= min_quality and entry["quality"] > 0:  # empty masks never kept
                    out["segmentation"] = entry["segmentation"]
                    out["area"] = float(mask_util.area(entry["segmentation"]))
                    kept += 1
                else:
                    dropped += 1
            annotations.append(out)
    logger.info("%d masks kept, %d dropped (quality < %g; their boxes stay, box-only)", kept, dropped, min_quality)
    return annotations


def merge_parts(args, cfg, dicts: List[Dict]) -> None:
    """Main process, after every shard is finished: parts -> --output, then remove the parts."""
    folder = parts_dir(args.output)
    results = read_parts(folder)
    missing = [i for i in range(len(dicts)) if i not in results]
    if missing:
        raise RuntimeError(f"{folder}: {len(missing)} images have no result (first: index {missing[0]}); "
                           "rerun the same command to finish them")
    metadata = MetadataCatalog.get(args.dataset)
    categories, to_dataset_id = synthetic.category_table(metadata, args.dataset)
    image_root = synthetic.image_root_of(dicts, metadata)
    data = {
        "info": {"mqformer_synthetic": {
            "tool": "synthesize_masks", "source_dataset": args.dataset, "weights": cfg.MODEL.WEIGHTS,
            "min_quality": args.min_quality, "batch_size": args.batch_size, "image_root": image_root,
            "quality": "IoU of the mask's tight box with the prompt box"}},
        "images": [synthetic.coco_image(record, image_root) for record in dicts],
        "categories": categories,
        "annotations": synthetic.number_annotations(
            merged_annotations(dicts, results, to_dataset_id, args.min_quality)),
    }
    synthetic.write_json_atomic(args.output, data)
    shutil.rmtree(folder)
    name = synthetic.masks_dataset_name(args.dataset)
    logger.info("wrote %s (%d images, %d annotations); %s", args.output, len(data["images"]),
                len(data["annotations"]),
                synthetic.registration_hint("register_synthetic_masks", name, args.output, image_root, args.dataset))


def load_model(cfg):
    """The model of cfg in eval mode, with MODEL.WEIGHTS loaded."""
    model = build_model(cfg)
    if not cfg.MODEL.WEIGHTS:
        raise ValueError("MODEL.WEIGHTS is empty: pass the checkpoint that predicts the masks")
    MQFormerCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    return model.eval()


def load_dataset(name: str) -> List[Dict]:
    if name not in DatasetCatalog.list():
        raise KeyError(f"--dataset '{name}' is not a registered dataset")
    dicts = DatasetCatalog.get(name)
    if not dicts:
        raise ValueError(f"--dataset '{name}' has no images")
    return dicts


def main(args) -> None:
    """One process: its shard of the batches, then (main process) the merge."""
    cfg = build_config(args.config_file, args.opts, cpu=args.cpu)
    setup_logger(name="mqformer_d2", distributed_rank=comm.get_rank())
    dicts = load_dataset(args.dataset)
    done = set(read_parts(parts_dir(args.output)))
    synthesize_shard(load_model(cfg), cfg, args, dicts, done)
    comm.synchronize()
    if comm.is_main_process():
        merge_parts(args, cfg, dicts)
    comm.synchronize()


def run(argv: Sequence[str]) -> None:
    """Check the output and the parts (before starting processes), then launch `main`."""
    args = argument_parser().parse_args(list(argv))
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be positive, got {args.batch_size}")
    setup_logger(name="mqformer_d2")
    cfg = build_config(args.config_file, args.opts, cpu=args.cpu)
    prepare_parts(args, run_settings(args, cfg, len(load_dataset(args.dataset))))
    if args.cpu:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(args,))


if __name__ == "__main__":
    run(sys.argv[1:])
