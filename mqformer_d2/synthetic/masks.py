"""Synthetic masks from boxes (paper 3.4): turn a registered detection dataset into a segmentation one.

Every box-only annotation becomes a box prompt of `box_prompting.predict_masks_for_boxes` (a
denoising-style query made from the box and its class name, no noise); its mask is written as COCO
RLE with a ``score`` (text probability x mean mask probability) and a ``quality`` (IoU of the
mask's tight box with the prompt box, `quality.box_iou_of_mask`). Masks with quality below
``min_quality``, and empty ones, are dropped: their annotation stays in the file as a box-only
target (with its score and quality). Annotations that already have a mask keep it.

`synthesize_masks(job)` checks the output and the progress folder (`progress.py`), launches the
processes (detectron2's ``launch``), each runs its shard of the batches, and the main process
merges the parts into ``job.output``. `tools/synthesize_masks.py` is its command line.
"""
import hashlib
import logging
import os
import shutil
from dataclasses import dataclass, field
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
from tqdm import tqdm

from ..checkpoint import MQFormerCheckpointer
from ..data.augmentation import build_augmentations
from ..data.images import read_image
from ..data.masks import encode_mask
from ..engine import build_config
from ..modeling.box_prompting import predict_masks_for_boxes
from . import outputs
from .progress import open_part_file, parts_dir, prepare_parts, rank_batches, read_parts, write_result_lines
from .quality import box_iou_of_mask
from .registration import masks_dataset_name, registration_hint

logger = logging.getLogger(__name__)


@dataclass
class MaskSynthesisJob:
    """One run of `synthesize_masks` (the options of tools/synthesize_masks.py)."""

    config_file: str  # the checkpoint's config
    dataset: str  # registered dataset whose boxes are prompted
    output: str  # COCO json to write
    opts: List[str] = field(default_factory=list)  # config changes: KEY VALUE pairs (MODEL.WEIGHTS ...)
    batch_size: int = 4  # images per forward pass (per process)
    min_quality: float = 0.5  # drop masks whose tight box has a lower IoU with the prompt box
    overwrite: bool = False  # replace an existing output
    cpu: bool = False  # MODEL.DEVICE cpu, GPUs hidden


def run_settings(job: MaskSynthesisJob, cfg, num_images: int) -> Dict:
    """What must match for a restart to resume a run (the device and process count need not)."""
    model_cfg = cfg.clone()
    model_cfg.defrost()
    model_cfg.MODEL.DEVICE = "any"
    weights = cfg.MODEL.WEIGHTS
    stat = os.stat(weights) if weights and os.path.isfile(weights) else None
    return {
        "dataset": job.dataset, "num_images": num_images, "batch_size": job.batch_size,
        "config_sha256": hashlib.sha256(model_cfg.dump().encode()).hexdigest(),
        "weights": weights, "weights_bytes": stat.st_size if stat else None,
        "weights_mtime_ns": stat.st_mtime_ns if stat else None,
    }


def box_prompts(record: Dict, text_prompts: Sequence[str], dataset: str):
    """The annotations of an image to prompt: box-only, not crowd. Returns (their indices in
    `annotations`, boxes (K, 4) XYXY absolute, texts (K,): the class name, else the first text)."""
    indices, boxes, texts = [], [], []
    for j, ann in enumerate(record.get("annotations", [])):
        if "segmentation" in ann or ann.get("iscrowd", 0) or "bbox" not in ann:
            continue
        indices.append(j)
        boxes.append(BoxMode.convert(list(ann["bbox"]), ann["bbox_mode"], BoxMode.XYXY_ABS))
        texts.append(outputs.prompt_text(ann, text_prompts, f"dataset '{dataset}', image {record['image_id']}: "
                                                            f"annotation {j}"))
    return indices, torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), texts


def model_input(record: Dict, augmentations: T.AugmentationList, image_format: str) -> Dict:
    """The test-time model input of a record: resized image (3, h, w), original height / width."""
    image = read_image(record["file_name"], format=image_format)
    utils.check_image_size(record, image)
    aug_input = T.AugInput(image)
    augmentations(aug_input)
    tensor = torch.as_tensor(np.ascontiguousarray(aug_input.image.transpose(2, 0, 1)))
    return {"image": tensor, "height": int(record["height"]), "width": int(record["width"])}


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


def batch_lines(model, cfg, job: MaskSynthesisJob, dicts: List[Dict], batch: List[int],
                augmentations: T.AugmentationList, prompts: Sequence[str]) -> List[Dict]:
    """The result lines of one batch of images (one forward pass for those with boxes to prompt)."""
    prompted, inputs, all_boxes, all_texts = [], [], [], []
    for index in batch:
        indices, boxes, texts = box_prompts(dicts[index], prompts, job.dataset)
        prompted.append((index, indices, boxes))
        if indices:  # images without a box to prompt need no forward pass
            inputs.append(model_input(dicts[index], augmentations, cfg.INPUT.FORMAT))
            all_boxes.append(boxes)
            all_texts.append(texts)
    predictions = iter(predict_batch(model, inputs, all_boxes, all_texts) if inputs else [])
    return [result_line(index, indices, boxes, next(predictions)) if indices else {"index": index, "masks": []}
            for index, indices, boxes in prompted]


def synthesize_shard(model, cfg, job: MaskSynthesisJob, dicts: List[Dict], done: Set[int]) -> None:
    """Run this process's batches that are not finished, appending each batch's lines to its part file."""
    rank, world_size = comm.get_rank(), comm.get_world_size()
    batches = rank_batches(len(dicts), job.batch_size, rank, world_size)
    todo = [b for b in batches if not all(i in done for i in b)]
    augmentations = T.AugmentationList(build_augmentations(cfg, is_train=False))
    prompts = list(MetadataCatalog.get(job.dataset).get("text_prompts", None) or [])
    logger.info("process %d/%d: %d of its %d batches to run", rank, world_size, len(todo), len(batches))
    with open_part_file(parts_dir(job.output), rank) as part, torch.no_grad():
        bar = tqdm(total=len(batches), initial=len(batches) - len(todo), desc=f"masks of {job.dataset}",
                   unit="batch", disable=not comm.is_main_process())
        for batch in todo:
            write_result_lines(part, batch_lines(model, cfg, job, dicts, batch, augmentations, prompts))
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
            out = outputs.coco_base_annotation(ann, record["image_id"], to_dataset_id)
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


def merge_parts(job: MaskSynthesisJob, cfg, dicts: List[Dict]) -> None:
    """Main process, after every shard is finished: parts -> job.output, then remove the parts."""
    folder = parts_dir(job.output)
    results = read_parts(folder)
    missing = [i for i in range(len(dicts)) if i not in results]
    if missing:
        raise RuntimeError(f"{folder}: {len(missing)} images have no result (first: index {missing[0]}); "
                           "rerun the same command to finish them")
    metadata = MetadataCatalog.get(job.dataset)
    categories, to_dataset_id = outputs.category_table(metadata, job.dataset)
    image_root = outputs.image_root_of(dicts, metadata)
    provenance = {"tool": "synthesize_masks", "source_dataset": job.dataset, "weights": cfg.MODEL.WEIGHTS,
                  "min_quality": job.min_quality, "batch_size": job.batch_size, "image_root": image_root,
                  "quality": "IoU of the mask's tight box with the prompt box"}
    data = outputs.synthetic_coco_file(provenance, dicts, image_root, categories,
                                       merged_annotations(dicts, results, to_dataset_id, job.min_quality))
    outputs.write_json_atomic(job.output, data)
    shutil.rmtree(folder)
    logger.info("wrote %s (%d images, %d annotations); %s", job.output, len(data["images"]),
                len(data["annotations"]), registration_hint("register_synthetic_masks", masks_dataset_name(job.dataset),
                                                            job.output, image_root, job.dataset))


def load_model(cfg):
    """The model of cfg in eval mode, with MODEL.WEIGHTS loaded."""
    model = build_model(cfg)
    if not cfg.MODEL.WEIGHTS:
        raise ValueError("MODEL.WEIGHTS is empty: pass the checkpoint that predicts the masks")
    MQFormerCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    return model.eval()


def load_dataset(name: str) -> List[Dict]:
    """The unified dicts of a registered, non-empty dataset."""
    outputs.require_registered(name)
    dicts = DatasetCatalog.get(name)
    if not dicts:
        raise ValueError(f"--dataset '{name}' has no images")
    return dicts


def process_main(job: MaskSynthesisJob) -> None:
    """One process: its shard of the batches, then (main process) the merge."""
    cfg = build_config(job.config_file, job.opts, cpu=job.cpu)
    setup_logger(name="mqformer_d2", distributed_rank=comm.get_rank())
    dicts = load_dataset(job.dataset)
    done = set(read_parts(parts_dir(job.output)))
    synthesize_shard(load_model(cfg), cfg, job, dicts, done)
    comm.synchronize()
    if comm.is_main_process():
        merge_parts(job, cfg, dicts)
    comm.synchronize()


def synthesize_masks(job: MaskSynthesisJob, num_gpus: int = 1, num_machines: int = 1, machine_rank: int = 0,
                     dist_url: str = "auto") -> None:
    """Check the output and the parts (before starting processes), then launch `process_main` on
    `num_gpus` processes per machine (one process: in this one)."""
    if job.batch_size < 1:
        raise ValueError(f"--batch-size must be positive, got {job.batch_size}")
    cfg = build_config(job.config_file, job.opts, cpu=job.cpu)
    prepare_parts(job.output, job.overwrite, run_settings(job, cfg, len(load_dataset(job.dataset))))
    if job.cpu:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    launch(process_main, num_gpus, num_machines=num_machines, machine_rank=machine_rank, dist_url=dist_url,
           args=(job,))
