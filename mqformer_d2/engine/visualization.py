"""Drawing MQ-Former's outputs with detectron2's Visualizer, the prompts as class names."""
from typing import Dict, Sequence

import numpy as np
from detectron2.data.catalog import Metadata
from detectron2.utils.visualizer import ColorMode, Visualizer, random_color


def prompt_metadata(prompts: Sequence[str]) -> Metadata:
    """Unregistered metadata naming classes after the prompts (class index = prompt index)."""
    return Metadata(name="mqformer_prompts", thing_classes=list(prompts), stuff_classes=list(prompts))


def draw_prediction(image_rgb: np.ndarray, prediction: Dict, prompts: Sequence[str], task: str,
                    score_threshold: float = 0.5) -> np.ndarray:
    """The (H, W, 3) RGB uint8 drawing of one image's `MQFormerPredictor` output for `task`.

    instance: masks, boxes and "prompt score" labels of the instances scoring above
    `score_threshold`; semantic: the best-scoring prompt per pixel; panoptic: the segments;
    referring: each prompt's mask labelled with the prompt.
    """
    visualizer = Visualizer(image_rgb, prompt_metadata(prompts), instance_mode=ColorMode.IMAGE)
    if task == "instance":
        instances = prediction["instances"].to("cpu")
        drawing = visualizer.draw_instance_predictions(instances[instances.scores > score_threshold])
    elif task == "semantic":
        drawing = visualizer.draw_sem_seg(semantic_label_map(prediction).to("cpu"))
    elif task == "panoptic":
        segment_ids, segments_info = prediction["panoptic_seg"]
        drawing = visualizer.draw_panoptic_seg(segment_ids.to("cpu"), segments_info)
    elif task == "referring":
        drawing = _draw_referring(visualizer, prediction["referring"])
    else:
        raise ValueError(f"task {task!r} has no drawing; expected instance, semantic, panoptic or referring")
    return drawing.get_image()


def semantic_label_map(prediction: Dict):
    """(H, W) int64: the best prompt per pixel of a semantic prediction, in either form
    (`sem_seg_labels`, or the argmax of the `sem_seg` scores)."""
    if "sem_seg_labels" in prediction:
        return prediction["sem_seg_labels"]
    return prediction["sem_seg"].argmax(0)


def _draw_referring(visualizer: Visualizer, referring: Dict):
    """One coloured mask per expression, labelled with the expression."""
    drawing = visualizer.output
    masks = referring["masks"].to("cpu")
    for index, text in enumerate(referring["texts"]):
        mask = masks[index].numpy()
        if mask.any():
            color = random_color(rgb=True, maximum=1)
            drawing = visualizer.draw_binary_mask(mask, color=color, text=text, alpha=0.5)
    return drawing

