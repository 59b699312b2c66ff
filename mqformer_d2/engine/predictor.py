"""`MQFormerPredictor`: detectron2's DefaultPredictor with prompts and a task per call."""
from typing import Dict, Optional, Sequence

import numpy as np
import torch
from detectron2.data import MetadataCatalog
from detectron2.data import transforms as T
from detectron2.engine import DefaultPredictor
from detectron2.modeling import build_model

from ..checkpoint import MQFormerCheckpointer, check_weights_path

from ..data.detectron2_datasets import adapt_detectron2_dataset
from ..data.images import as_uint8_bgr, resized_shape
from ..exemplars.calls import predict_with_exemplars

PREDICTOR_TASKS = ("instance", "semantic", "panoptic", "referring", "foreground", "detection", "all")


class MQFormerPredictor(DefaultPredictor):
    """Open-vocabulary prediction on one image.

    Built like DefaultPredictor (model from cfg, weights from MODEL.WEIGHTS, test-time resize from
    INPUT.MIN_SIZE_TEST / MAX_SIZE_TEST, input in BGR order like cv2.imread gives), and called as

        predictor(image, prompts=["cat", "a dog on the sofa"], task="instance")

    prompts: any class names or sentences; None = the default vocabulary (MODEL.MQFORMER.TEST.
    VOCABULARY, else the `text_prompts` of DATASETS.TEST[0]'s metadata). Nothing is registered.
    task: "instance" -> {"instances"}, "semantic" -> {"sem_seg"} (T, H, W) per-prompt scores, or,
    when that map would exceed MODEL.MQFORMER.TEST.SEMANTIC_MAX_SCORES_MB (or with
    semantic_output="labels"), {"sem_seg_labels" (H, W) int64, "sem_seg_scores" (H, W)}: the best
    prompt per pixel and its score, computed a chunk of prompts at a time; "panoptic" ->
    {"panoptic_seg": (segment ids, segments_info)}, "referring" -> {"referring": {"texts", "masks"
    (T, H, W), "scores"}}, one mask per prompt; None = MODEL.MQFORMER.TEST.TASK.
    Class indices (pred_classes, category_id, sem_seg_labels) index `prompts`.

    Exemplar prompts (a model with MODEL.MQFORMER.EXEMPLARS.ENABLED, trained by the exemplar stage):

        predictor(image, prompts=["cat"], exemplars={"part 4711": [(photo, (x0, y0, x1, y1)), ...]},
                  negative_exemplars={"part 4711": [(None, box_on_image)]})

    each exemplar is (image, region): a BGR array, a file path, or None for `image` itself, and an
    xyxy box or an (H, W) mask in that image's pixels; the K exemplars of a name are pooled into one
    prompt (MODEL.MQFORMER.EXEMPLARS.POOLING) appended to `prompts` (None = the exemplar names only).
    Negative exemplars of a prompt drop the queries that match them better (mqformer_d2.exemplars.prompting).

    MODEL.WEIGHTS is loaded with `MQFormerCheckpointer` (safe reading, format conversion, load
    report, errors for files that do not fit the model), not detectron2's plain loader.

    matting=True (controllable matting): each prompt's referring mask becomes an alpha matte by
    the refinement of MODEL.MQFORMER.MATTING.WEIGHTS (trimap band MATTING.TRIMAP_BAND around the
    mask, at most MATTING.RESOLUTION pixels): the output's "referring" dict gains "alphas"
    (T, H, W) float in [0, 1]. A prompt whose mask is empty gets an all-zero alpha and a warning.
    """

    def __init__(self, cfg):
        """DefaultPredictor's set-up, with MQ-Former's weights loader."""
        self.cfg = cfg.clone()
        check_weights_path(cfg.MODEL.WEIGHTS)  # a missing file fails before a large model is built
        self.model = build_model(self.cfg)
        self.model.eval()
        if len(cfg.DATASETS.TEST):
            adapt_detectron2_dataset(cfg.DATASETS.TEST[0])  # prompts of a detectron2-style registration
            self.metadata = MetadataCatalog.get(cfg.DATASETS.TEST[0])
        MQFormerCheckpointer(self.model).load(cfg.MODEL.WEIGHTS)
        self.aug = T.ResizeShortestEdge([cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MIN_SIZE_TEST], cfg.INPUT.MAX_SIZE_TEST)
        self.input_format = cfg.INPUT.FORMAT
        if self.input_format not in ("RGB", "BGR"):
            raise ValueError(f"INPUT.FORMAT must be RGB or BGR, got {self.input_format!r}")

    def __call__(self, original_image: np.ndarray, prompts: Optional[Sequence[str]] = None,
                 task: Optional[str] = None, semantic_output: Optional[str] = None,
                 stuff_prompts: Sequence[str] = (), exemplars: Optional[Dict] = None,
                 negative_exemplars: Optional[Dict] = None, matting: bool = False) -> Dict:
        """
        Args:
            original_image: (H, W, 3) uint8 image in BGR order (uint16 is scaled to 8 bits, (H, W)
                grayscale replicated; a float array is refused with a message saying how to convert).
            prompts: texts to segment, see the class docstring.
            task: one of PREDICTOR_TASKS.
            semantic_output: "scores" (the (T, H, W) map) or "labels" (per-pixel labels and scores,
                bounded memory); None = scores unless the map would exceed SEMANTIC_MAX_SCORES_MB.
            stuff_prompts: prompts that are stuff in the panoptic output (one segment per prompt,
                no score), e.g. ["sky", "grass"]; besides those the dataset's metadata makes stuff.
            exemplars, negative_exemplars: {name: [(image, region), ...]}, see the class docstring.
            matting: also an alpha matte per prompt (see the class docstring); the task must be
                "referring" or None (then it is "referring").

        Returns:
            the model's output dict for the image, at its original size.
        """
        inputs = self.model_inputs(original_image)
        if prompts is not None:
            if isinstance(prompts, str):
                raise TypeError(f"prompts must be a list of strings, got the string {prompts!r}; "
                                "wrap a single prompt in a list")
            inputs["vocabulary"] = list(prompts)
        if matting:
            task = self._matting_task(task)
        if task is not None:
            inputs["task"] = task
        if semantic_output is not None:
            inputs["sem_seg_output"] = semantic_output
        if stuff_prompts:
            inputs["stuff_prompts"] = list(stuff_prompts)
        if exemplars or negative_exemplars:
            names = list(prompts or [])
            inputs["vocabulary"] = names + [n for n in (exemplars or {}) if n not in names]
            output = predict_with_exemplars(self.model, self.cfg, inputs, original_image, exemplars or {},
                                            negative_exemplars)
        else:
            with torch.no_grad():
                output = self.model([inputs])[0]
        if matting:
            output["referring"]["alphas"] = self._alphas(original_image, output["referring"])
        return output

    @staticmethod
    def _matting_task(task: Optional[str]) -> str:
        if task not in (None, "referring"):
            raise ValueError(f"matting=True mattes one object per prompt (the referring task); "
                             f"task {task!r} is not possible with it")
        return "referring"

    def _alphas(self, original_image: np.ndarray, referring: Dict) -> torch.Tensor:
        """(T, H, W) alpha mattes of the referring masks (refinement loaded on first use)."""
        from ..matting.inference import alpha_from_mask, load_refiner

        matting = self.cfg.MODEL.MQFORMER.MATTING
        if getattr(self, "refiner", None) is None:
            if not matting.WEIGHTS:
                raise ValueError("matting=True needs MODEL.MQFORMER.MATTING.WEIGHTS: the refinement's "
                                 "weights (train them with tools/train_matting.py)")
            self.refiner = load_refiner(matting.WEIGHTS, self.cfg.MODEL.DEVICE)
        image_rgb = np.ascontiguousarray(as_uint8_bgr(original_image, "original_image")[:, :, ::-1])
        masks = referring["masks"].cpu().numpy()
        alphas = [alpha_from_mask(self.refiner, image_rgb, mask, matting.TRIMAP_BAND,
                                  matting.RESOLUTION, where=f"prompt {text!r}")
                  for mask, text in zip(masks, referring["texts"])]
        height, width = masks.shape[1:]
        return torch.from_numpy(np.stack(alphas)) if alphas else torch.zeros(0, height, width)

    def model_inputs(self, original_image: np.ndarray) -> Dict:
        """The model's input dict of a BGR image: checked and converted to (H, W, 3) uint8 (see
        `as_uint8_bgr`: 16-bit and grayscale converted, float refused; an image without pixels or
        too elongated to resize refused by `resized_shape`), resized, in INPUT.FORMAT channel order."""
        original_image = as_uint8_bgr(original_image, "original_image")
        if self.input_format == "RGB":
            original_image = original_image[:, :, ::-1]
        height, width = original_image.shape[:2]
        resized_shape(height, width, self.cfg.INPUT.MIN_SIZE_TEST, self.cfg.INPUT.MAX_SIZE_TEST, "original_image")
        image = self.aug.get_transform(original_image).apply_image(original_image)
        image = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        return {"image": image.to(self.cfg.MODEL.DEVICE), "height": height, "width": width}
