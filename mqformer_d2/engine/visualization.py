"""Drawing MQ-Former's outputs with detectron2's Visualizer, the prompts as class names.

`render` draws one image's prediction for a task and says how many objects it drew (and, when
none, why): small images are drawn upscaled so that labels do not hide them, near-duplicate
instances are drawn once (one label per object), and a title strip names the task, the
threshold and the prompts. The task "all" draws its four outputs side by side.
"""
import logging
import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from detectron2.data.catalog import Metadata
from detectron2.layers import batched_nms
from detectron2.utils.visualizer import ColorMode, VisImage, Visualizer, random_color

from ..data.images import read_image

logger = logging.getLogger(__name__)

# Images whose longer side is below this are drawn upscaled to it (labels keep their pixel size).
MIN_DRAWING_SIDE = 400
# Instances of one prompt whose boxes overlap more than this are drawn once (the best scoring).
DUPLICATE_IOU = 0.7
# The outputs drawn for the task "all", in this order (a 2 x 2 grid).
ALL_PANELS = ("instance", "semantic", "panoptic", "referring")
DRAWN_TASKS = ("instance", "detection", "semantic", "panoptic", "referring", "foreground", "all")
_TITLE_FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass
class Drawing:
    """One drawn prediction: the RGB uint8 picture (title strip included), how many objects it
    shows (instances, classes, segments, expressions or foreground regions) and, when it shows
    none, why."""

    image: np.ndarray
    objects: int
    note: str = ""


def prompt_metadata(prompts: Sequence[str]) -> Metadata:
    """Unregistered metadata naming classes after the prompts (class index = prompt index)."""
    return Metadata(name="mqformer_prompts", thing_classes=list(prompts), stuff_classes=list(prompts))


def drawing_scale(height: int, width: int) -> float:
    """Upscaling factor of an image of this size: its longer side becomes MIN_DRAWING_SIDE when
    it is shorter (1.0 otherwise)."""
    return max(1.0, MIN_DRAWING_SIDE / max(height, width, 1))


def render(image_rgb: np.ndarray, prediction: Dict, prompts: Sequence[str], task: str,
           score_threshold: float = 0.5, title: bool = True) -> Drawing:
    """Draw one image's `MQFormerPredictor` output for `task` (one of DRAWN_TASKS).

    instance / detection: masks (instance) or boxes with "prompt score" labels of the instances
    scoring above `score_threshold`, near-duplicates once; semantic: the best prompt per pixel;
    panoptic: the segments (stuff without scores); referring: each prompt's mask labelled with
    the prompt; foreground: the pixels scoring above `score_threshold`; all: the first four side
    by side."""
    if task == "all":
        panels = [render(image_rgb, prediction, prompts, sub, score_threshold, title=False) for sub in ALL_PANELS]
        image = _grid([_with_title(p.image, [sub]) for p, sub in zip(panels, ALL_PANELS)])
        notes = [f"{sub}: {p.note}" for p, sub in zip(panels, ALL_PANELS) if p.note]
        drawing = Drawing(image, sum(p.objects for p in panels), "; ".join(notes))
    else:
        drawing = _render_task(image_rgb, prediction, prompts, task, score_threshold)
    if title:
        drawing.image = _with_title(drawing.image, title_lines(task, prompts, score_threshold))
    return drawing


def draw_image_file(predictor, image_file: str, prompts: Sequence[str], task: str, threshold: float = 0.5,
                    stuff: Sequence[str] = (), exemplars: Optional[Dict] = None,
                    negative_exemplars: Optional[Dict] = None) -> Drawing:
    """Predict (`MQFormerPredictor`) and `render` one image file; logs how many objects the
    drawing shows, or a warning saying why it shows none. `exemplars` / `negative_exemplars`: the
    predictor's exemplar prompts (drawn after `prompts`, under their names)."""
    image = read_image(image_file, format="BGR")
    # Semantic drawings show only the best prompt per pixel: the bounded form, whatever the
    # vocabulary's size. (The foreground drawing thresholds its score map.)
    semantic_output = "labels" if task in ("semantic", "all") else None
    extra = {"exemplars": exemplars, "negative_exemplars": negative_exemplars} if exemplars or negative_exemplars else {}
    prediction = predictor(image, prompts=prompts, task=task, semantic_output=semantic_output, stuff_prompts=stuff,
                           **extra)
    prompts = list(prompts) + [name for name in exemplars or {} if name not in prompts]
    drawing = render(image[:, :, ::-1], prediction, prompts, task, threshold)
    if drawing.objects:
        logger.info("%s: drew %d object(s) (%s)", image_file, drawing.objects, task)
    else:
        logger.warning("%s: drew nothing (%s): %s", image_file, task, drawing.note)
    return drawing


def draw_prediction(image_rgb: np.ndarray, prediction: Dict, prompts: Sequence[str], task: str,
                    score_threshold: float = 0.5) -> np.ndarray:
    """The (H', W', 3) RGB uint8 picture of `render` (upscaled when small, with a title strip)."""
    return render(image_rgb, prediction, prompts, task, score_threshold).image


def _render_task(image_rgb, prediction, prompts, task, score_threshold) -> Drawing:
    """One task's drawing, without title."""
    scale = drawing_scale(*image_rgb.shape[:2])
    visualizer = Visualizer(image_rgb, prompt_metadata(prompts), scale=scale, instance_mode=ColorMode.IMAGE)
    if task in ("instance", "detection"):
        output, count, note = _draw_instances(visualizer, prediction["instances"], score_threshold, task)
    elif task == "semantic":
        labels = semantic_label_map(prediction).to("cpu")
        output, count, note = visualizer.draw_sem_seg(labels), len(torch.unique(labels)), ""
    elif task == "panoptic":
        segment_ids, segments_info = prediction["panoptic_seg"]
        count = len(segments_info)
        output = visualizer.draw_panoptic_seg(segment_ids.to("cpu"), segments_info)
        note = "" if count else "no segment (every query scored below MODEL.MQFORMER.TEST.OBJECT_MASK_THRESHOLD)"
    elif task == "referring":
        output, count = _draw_referring(visualizer, prediction["referring"])
        note = "" if count else "every expression's mask is empty"
    elif task == "foreground":
        output, count, note = _draw_foreground(visualizer, prediction["sem_seg"][0], prompts[0], score_threshold)
    else:
        raise ValueError(f"task {task!r} has no drawing; expected one of {DRAWN_TASKS}")
    return Drawing(output.get_image(), int(count), note)


def semantic_label_map(prediction: Dict):
    """(H, W) int64: the best prompt per pixel of a semantic prediction, in either form
    (`sem_seg_labels`, or the argmax of the `sem_seg` scores)."""
    if "sem_seg_labels" in prediction:
        return prediction["sem_seg_labels"]
    return prediction["sem_seg"].argmax(0)


def distinct_instances(instances, score_threshold: float):
    """The instances scoring above `score_threshold`, of near-duplicates (same prompt, boxes at
    IoU > DUPLICATE_IOU) only the best scoring: their labels would be drawn on top of each other."""
    instances = instances.to("cpu")
    instances = instances[instances.scores > score_threshold]
    if len(instances) < 2:
        return instances
    keep = batched_nms(instances.pred_boxes.tensor.float(), instances.scores.float(),
                       instances.pred_classes, DUPLICATE_IOU)
    return instances[keep.sort().values]


def _draw_instances(visualizer: Visualizer, instances, score_threshold: float, task: str) -> Tuple[VisImage, int, str]:
    """Instances above the threshold, each once; detection: boxes only."""
    kept = distinct_instances(instances, score_threshold)
    if task == "detection" and kept.has("pred_masks"):
        kept.remove("pred_masks")
    note = ""
    if len(kept) == 0:
        best = float(instances.scores.max()) if len(instances) else None
        note = (f"no instance scored above the threshold {score_threshold:g}"
                + (f" (best score {best:.2f})" if best is not None else " (no instance at all)"))
    return visualizer.draw_instance_predictions(kept), len(kept), note


def _draw_referring(visualizer: Visualizer, referring: Dict) -> Tuple[VisImage, int]:
    """One coloured mask per expression, labelled with the expression; (drawing, masks drawn)."""
    drawing, count = visualizer.output, 0
    masks = referring["masks"].to("cpu")
    for index, text in enumerate(referring["texts"]):
        mask = masks[index].numpy()
        if mask.any():
            color = random_color(rgb=True, maximum=1)
            drawing = visualizer.draw_binary_mask(mask, color=color, text=text, alpha=0.5)
            count += 1
    return drawing, count


def _draw_foreground(visualizer: Visualizer, scores: torch.Tensor, prompt: str,
                     score_threshold: float) -> Tuple[VisImage, int, str]:
    """The pixels whose foreground score is above the threshold, as one mask labelled `prompt`."""
    mask = (scores.to("cpu") > score_threshold).numpy()
    if not mask.any():
        best = float(scores.max()) if scores.numel() else 0.0
        return visualizer.output, 0, f"no pixel scored above the threshold {score_threshold:g} (best {best:.2f})"
    return visualizer.draw_binary_mask(mask, color=(0.1, 0.7, 0.2), text=prompt, alpha=0.5), 1, ""


def title_lines(task: str, prompts: Sequence[str], score_threshold: float) -> List[str]:
    """The title of a drawing: the task and threshold, then the prompts."""
    return [f"task: {task}   threshold: {score_threshold:g}", "prompts: " + ", ".join(prompts)]


def _with_title(image: np.ndarray, lines: Sequence[str]) -> np.ndarray:
    """`image` below a white strip holding `lines`, wrapped to its width."""
    width = image.shape[1]
    font_scale = max(0.4, min(0.8, width / 900))
    thickness = 1
    (_, text_height), baseline = cv2.getTextSize("Ag", _TITLE_FONT, font_scale, thickness)
    wrapped = [piece for line in lines for piece in _wrap(line, width - 16, font_scale, thickness)]
    line_height = text_height + baseline + 6
    strip = np.full((line_height * len(wrapped) + 8, width, 3), 255, np.uint8)
    for index, text in enumerate(wrapped):
        cv2.putText(strip, text, (8, 4 + text_height + index * line_height), _TITLE_FONT, font_scale,
                    (20, 20, 20), thickness, cv2.LINE_AA)
    return np.concatenate([strip, image], axis=0)


def _wrap(line: str, width: int, font_scale: float, thickness: int) -> List[str]:
    """`line` cut at spaces into pieces that fit `width` pixels (a long word is cut anywhere)."""
    pieces, current = [], ""
    for word in line.split(" "):
        candidate = f"{current} {word}" if current else word
        if current and cv2.getTextSize(candidate, _TITLE_FONT, font_scale, thickness)[0][0] > width:
            pieces.append(current)
            candidate = word
        current = candidate
    return pieces + [current] if current else pieces


def _grid(images: Sequence[np.ndarray], columns: int = 2) -> np.ndarray:
    """`images` tiled row by row on white, `columns` per row."""
    height = max(i.shape[0] for i in images)
    width = max(i.shape[1] for i in images)
    rows = math.ceil(len(images) / columns)
    grid = np.full((rows * height, columns * width, 3), 255, np.uint8)
    for index, image in enumerate(images):
        top, left = (index // columns) * height, (index % columns) * width
        grid[top:top + image.shape[0], left:left + image.shape[1]] = image
    return grid
