"""The MQ-Former meta-architecture: image + texts -> losses (training) or task outputs (inference)."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from detectron2.config import configurable
from detectron2.data import MetadataCatalog
from detectron2.modeling import META_ARCH_REGISTRY, Backbone, build_backbone
from detectron2.structures import ImageList
from torch import Tensor, nn

from mqformer_d2.layers import xyxy_to_cxcywh

from ..criterion import SetCriterion
from ..decoder import build_decoder
from ..denoising import build_denoising_queries
from ..matcher import HungarianMatcher
from ..pixel_decoder import build_pixel_decoder
from ..text_encoder import build_text_encoder
from . import postprocessing as post
from .targets import instances_to_targets
from .vocabulary import check_vocabulary, stuff_prompts, union_vocabulary

TASK_OUTPUTS = {
    "instance": ("instances",),
    "detection": ("instances",),
    "semantic": ("sem_seg",),
    "foreground": ("sem_seg",),
    "panoptic": ("panoptic_seg",),
    "referring": ("referring",),
    "all": ("instances", "sem_seg", "panoptic_seg", "referring"),
}


@META_ARCH_REGISTRY.register()
class MQFormer(nn.Module):
    """Mixed-Query Transformer (Mask DINO + open vocabulary + mixed queries).

    normalise -> backbone -> pixel decoder -> text embeddings of the batch's union vocabulary ->
    mixed-query decoder -> criterion losses (training) or post-processing (inference).

    Args:
        backbone, pixel_decoder, text_encoder, decoder, criterion: built submodules (criterion may
            be None for an inference-only model).
        pixel_mean, pixel_std: per-channel normalisation of the input images.
        size_divisibility: padded batch sizes are multiples of this.
        denoising: kwargs of `denoising.build_denoising_queries` (dn_query_budget,
            label_noise_ratio, box_noise_scale), or None to train without denoising queries.
        test_task: outputs for inputs without a "task" key (a key of TASK_OUTPUTS).
        test_vocabulary: default inference vocabulary ([] = the test dataset's text_prompts).
        test_dataset: dataset whose metadata gives the fallback vocabulary and thing classes.
        max_detections, instance_score_threshold, object_mask_threshold, overlap_threshold:
            post-processing settings (see `postprocessing`).
    """

    @configurable
    def __init__(self, *, backbone: Backbone, pixel_decoder: nn.Module, text_encoder: nn.Module,
                 decoder: nn.Module, criterion: Optional[nn.Module], pixel_mean: Sequence[float],
                 pixel_std: Sequence[float], size_divisibility: int, denoising: Optional[Dict],
                 test_task: str = "all", test_vocabulary: Sequence[str] = (), test_dataset: str = "",
                 max_detections: int = 100, instance_score_threshold: float = 0.0,
                 object_mask_threshold: float = 0.25, overlap_threshold: float = 0.8):
        super().__init__()
        if test_task not in TASK_OUTPUTS:
            raise ValueError(f"MODEL.MQFORMER.TEST.TASK: {test_task!r} is not one of {sorted(TASK_OUTPUTS)}")
        self.backbone = backbone
        self.pixel_decoder = pixel_decoder
        self.text_encoder = text_encoder
        self.decoder = decoder
        self.criterion = criterion
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), persistent=False)
        self.size_divisibility = max(size_divisibility, backbone.size_divisibility)
        self.denoising = denoising
        self.test_task = test_task
        self.test_vocabulary = check_vocabulary(test_vocabulary, "MODEL.MQFORMER.TEST.VOCABULARY") or None
        self.test_dataset = test_dataset
        self.max_detections = max_detections
        self.instance_score_threshold = instance_score_threshold
        self.object_mask_threshold = object_mask_threshold
        self.overlap_threshold = overlap_threshold

    @classmethod
    def from_config(cls, cfg) -> Dict:
        """The only code of the model that reads cfg (besides the registries' builders)."""
        mq = cfg.MODEL.MQFORMER
        backbone = build_backbone(cfg)
        dn = mq.DENOISING
        return {
            "backbone": backbone,
            "pixel_decoder": build_pixel_decoder(cfg, backbone.output_shape()),
            "text_encoder": build_text_encoder(cfg),
            "decoder": build_decoder(cfg),
            "criterion": build_criterion(cfg),
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "size_divisibility": mq.SIZE_DIVISIBILITY,
            "denoising": {
                "dn_query_budget": dn.NUM_QUERIES,
                "label_noise_ratio": dn.LABEL_NOISE_RATIO,
                "box_noise_scale": dn.BOX_NOISE_SCALE,
            } if dn.ENABLED else None,
            "test_task": mq.TEST.TASK,
            "test_vocabulary": list(mq.TEST.VOCABULARY),
            "test_dataset": cfg.DATASETS.TEST[0] if len(cfg.DATASETS.TEST) else "",
            "max_detections": cfg.TEST.DETECTIONS_PER_IMAGE,
            "instance_score_threshold": mq.TEST.INSTANCE_SCORE_THRESHOLD,
            "object_mask_threshold": mq.TEST.OBJECT_MASK_THRESHOLD,
            "overlap_threshold": mq.TEST.OVERLAP_THRESHOLD,
        }

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def set_vocabulary(self, texts: Optional[Sequence[str]]) -> None:
        """Set (or, with None, clear) the vocabulary used for inputs without a "vocabulary" key."""
        self.test_vocabulary = None if texts is None else check_vocabulary(texts, "set_vocabulary(texts)")

    def forward(self, batched_inputs: List[Dict]):
        """
        Args:
            batched_inputs: mapper outputs (docs/data_format.md): "image" (3, H, W), "vocabulary",
                "instances" (training), optional "height", "width", "task".

        Returns:
            training: dict of weighted scalar losses. Inference: one dict per image with some of
            instances / sem_seg / panoptic_seg / referring (see TASK_OUTPUTS).
        """
        images, padding_mask = self.preprocess_images(batched_inputs)
        vocabularies = [self._vocabulary(x, index) for index, x in enumerate(batched_inputs)]
        texts, text_valid, local_to_union = union_vocabulary(vocabularies, device=self.device)
        use_templates = not self.training and all(self._task(x) != "referring" for x in batched_inputs)
        text_embeddings = self.text_encoder(texts, use_templates=use_templates)
        pixel = self.pixel_decoder(self.backbone(images.tensor), padding_mask)
        if not self.training:
            outputs = self.decoder(pixel, text_embeddings, text_valid)
            return self.postprocess(outputs, batched_inputs, images, vocabularies, local_to_union)
        return self.losses(batched_inputs, images, pixel, text_embeddings, text_valid, local_to_union)

    def losses(self, batched_inputs, images: ImageList, pixel, text_embeddings: Tensor, text_valid: Tensor,
               local_to_union: List[Tensor]) -> Dict[str, Tensor]:
        """Training: build targets (and denoising queries), run the decoder, apply the criterion."""
        if self.criterion is None:
            raise RuntimeError("MQFormer was built without a criterion: it can only run in eval mode")
        missing = [i for i, x in enumerate(batched_inputs) if "instances" not in x]
        if missing:
            raise ValueError(f"training needs batched_inputs[i]['instances']; missing for i in {missing}")
        instances = [x["instances"].to(self.device) for x in batched_inputs]
        targets = instances_to_targets(instances, local_to_union, tuple(images.tensor.shape[-2:]))
        denoising = None
        if self.denoising is not None:
            denoising = build_denoising_queries(
                targets, text_embeddings, text_valid, num_matching_queries=self.decoder.num_queries,
                **self.denoising,
            )
        outputs = self.decoder(pixel, text_embeddings, text_valid, denoising)
        if denoising is not None:
            outputs["dn_meta"] = denoising.meta
        return self.criterion(outputs, targets)

    @torch.no_grad()
    def final_layer_matching(self, batched_inputs: List[Dict]) -> Tuple[List[Dict], List[Dict], List[Tuple]]:
        """The final decoder layer's predictions for labelled inputs (no denoising queries) and its
        Hungarian assignment to their targets, as the training matcher makes it.

        Args:
            batched_inputs: as in training ("image", "vocabulary", "instances").

        Returns:
            three lists over the B images: the final layer's "pred_logits" (Q, T) (texts outside the
            image's vocabulary at -inf), "pred_masks" (Q, Hm, Wm), "pred_boxes" (Q, 4) and "texts"
            (the batch's T texts, shared);
            the targets (`instances_to_targets`: "labels" (K,) into the same T texts, "masks",
            "has_box", ...); the matcher's (query index, target index) pairs.
        """
        if self.criterion is None:
            raise RuntimeError("final_layer_matching needs the model's criterion (its matcher)")
        images, padding_mask = self.preprocess_images(batched_inputs)
        vocabularies = [self._vocabulary(x, index) for index, x in enumerate(batched_inputs)]
        texts, text_valid, local_to_union = union_vocabulary(vocabularies, device=self.device)
        pixel = self.pixel_decoder(self.backbone(images.tensor), padding_mask)
        outputs = self.decoder(pixel, self.text_encoder(texts, use_templates=False), text_valid)
        instances = [x["instances"].to(self.device) for x in batched_inputs]
        targets = instances_to_targets(instances, local_to_union, tuple(images.tensor.shape[-2:]))
        logits = outputs["pred_logits"].masked_fill(~text_valid[:, None, :], float("-inf"))
        per_image = [{"pred_logits": logits[b], "pred_masks": outputs["pred_masks"][b],
                      "pred_boxes": outputs["pred_boxes"][b], "query_types": outputs["query_types"],
                      "texts": texts}
                     for b in range(len(batched_inputs))]
        return per_image, targets, self.criterion.matcher(outputs, targets)

    def match_queries(self, batched_inputs: List[Dict]) -> List[Dict[str, Tensor]]:
        """Which query (and of which type) wins each target in the final decoder layer's matching.
        Used by the query ablation to measure how often learnable vs conditional queries predict
        thing vs stuff segments.

        Returns:
            per image: "query_type" (M,) int64 (0 learnable, 1 conditional) and "has_box" (M,) bool
            (False for stuff targets) of its M matched targets.
        """
        outputs, targets, indices = self.final_layer_matching(batched_inputs)
        return [{"query_type": output["query_types"][query_index.to(self.device)],
                 "has_box": target["has_box"][target_index.to(self.device)]}
                for output, target, (query_index, target_index) in zip(outputs, targets, indices)]

    @torch.no_grad()
    def predict_masks_for_boxes(self, batched_inputs: List[Dict], boxes: Sequence[Tensor],
                                texts: Sequence[Sequence[str]]) -> List[Dict[str, Tensor]]:
        """Box-prompted decoding: one mask per (box, text) prompt, e.g. to turn boxes into masks.

        Each prompt becomes a query exactly as a denoising query is built in training (content =
        the projected embedding of its text, anchor = its box), without noise and in a single group.
        The matching queries run alongside (prompts see them, they never see the prompts) and their
        outputs are ignored. Works in train or eval mode; dropout should be off (`model.eval()`).

        Args:
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
        images, padding_mask = self.preprocess_images(batched_inputs)
        targets, vocabularies = self._box_prompt_targets(batched_inputs, images, boxes, texts)
        union, text_valid, local_to_union = union_vocabulary(vocabularies, device=self.device)
        for target, ids in zip(targets, local_to_union):
            target["labels"] = ids[target["labels"]]
        # Denoising content is built from embeddings without templates, as in training.
        text_embeddings = self.text_encoder(union, use_templates=False)
        pixel = self.pixel_decoder(self.backbone(images.tensor), padding_mask)
        prompts = build_denoising_queries(
            targets, text_embeddings, text_valid, num_matching_queries=self.decoder.num_queries,
            dn_query_budget=max(max(len(t["labels"]) for t in targets), 1), label_noise_ratio=0.0,
            box_noise_scale=0.0,
        )
        if prompts is None:  # no box in the whole batch
            return [self._box_prompt_results(x, images, i, None, None, None) for i, x in enumerate(batched_inputs)]
        outputs = self.decoder(pixel, text_embeddings, text_valid, prompts)["dn_outputs"]
        return [
            self._box_prompt_results(x, images, i, outputs["pred_logits"][i], outputs["pred_masks"][i],
                                     targets[i]["labels"])
            for i, x in enumerate(batched_inputs)
        ]

    def _box_prompt_targets(self, batched_inputs, images: ImageList, boxes, texts):
        """Per image a denoising target ("labels" = local text ids (K,), "boxes" (K, 4) cxcywh
        normalised by the original size, which equals the normalisation by the unpadded resized
        size) and its vocabulary (distinct texts, first-seen order; a placeholder when K = 0)."""
        targets, vocabularies = [], []
        for index, (x, image_boxes, image_texts) in enumerate(zip(batched_inputs, boxes, texts)):
            image_boxes = torch.as_tensor(image_boxes, dtype=torch.float32, device=self.device).reshape(-1, 4)
            image_texts = check_vocabulary(image_texts, f"texts[{index}]")
            if len(image_texts) != len(image_boxes):
                raise ValueError(f"image {index}: {len(image_boxes)} boxes but {len(image_texts)} texts")
            height, width = images.image_sizes[index]
            height, width = x.get("height", height), x.get("width", width)
            scale = image_boxes.new_tensor([width, height, width, height])
            vocabulary = list(dict.fromkeys(image_texts)) or ["object"]
            position = {text: i for i, text in enumerate(vocabulary)}
            labels = torch.tensor([position[t] for t in image_texts], dtype=torch.int64, device=self.device)
            targets.append({"labels": labels, "boxes": xyxy_to_cxcywh(image_boxes / scale).clamp(0.0, 1.0)})
            vocabularies.append(vocabulary)
        return targets, vocabularies

    def _box_prompt_results(self, x: Dict, images: ImageList, index: int, logits: Optional[Tensor],
                            mask_logits: Optional[Tensor], labels: Optional[Tensor]) -> Dict[str, Tensor]:
        """The first K prompt queries of one image -> masks, scores, mask_probs at the original size."""
        image_size = tuple(images.image_sizes[index])
        output_size = (x.get("height", image_size[0]), x.get("width", image_size[1]))
        num = 0 if labels is None else len(labels)
        if num == 0:
            return {"masks": torch.zeros(0, *output_size, dtype=torch.bool, device=self.device),
                    "scores": torch.zeros(0, device=self.device),
                    "mask_probs": torch.zeros(0, *output_size, device=self.device)}
        resize = post.ResizeSpec(tuple(images.tensor.shape[-2:]), image_size, output_size)
        probs = resize.resize(mask_logits[:num]).sigmoid()
        masks = probs > 0.5
        class_probs = logits[torch.arange(num, device=labels.device), labels].sigmoid()
        inside = (probs * masks).flatten(1).sum(1) / masks.flatten(1).sum(1).clamp(min=1)
        return {"masks": masks, "scores": class_probs * inside, "mask_probs": probs}

    def preprocess_images(self, batched_inputs: List[Dict]) -> Tuple[ImageList, Tensor]:
        """Normalise and pad -> ImageList and its (B, Hpad, Wpad) bool padding mask (True = pad)."""
        for index, x in enumerate(batched_inputs):
            if "image" not in x:
                raise ValueError(f"batched_inputs[{index}] lacks the key 'image'")
        images = [(x["image"].to(self.device) - self.pixel_mean) / self.pixel_std for x in batched_inputs]
        images = ImageList.from_tensors(images, self.size_divisibility)
        padding_mask = torch.ones(images.tensor.shape[0], *images.tensor.shape[-2:], dtype=torch.bool,
                                  device=self.device)
        for index, (height, width) in enumerate(images.image_sizes):
            padding_mask[index, :height, :width] = False
        return images, padding_mask

    def _task(self, x: Dict) -> str:
        task = x.get("task", self.test_task)
        if task not in TASK_OUTPUTS:
            raise ValueError(f"input 'task' {task!r} is not one of {sorted(TASK_OUTPUTS)}")
        return task

    def _dataset(self, x: Dict) -> str:
        """The input's dataset (the loaders tag each input with its "dataset_name"), else
        DATASETS.TEST[0]: its metadata gives the fallback vocabulary and the stuff classes."""
        return x.get("dataset_name") or self.test_dataset

    def _vocabulary(self, x: Dict, index: int) -> List[str]:
        """The input's "vocabulary"; at inference falling back to set_vocabulary / config / metadata."""
        if "vocabulary" in x:
            return check_vocabulary(x["vocabulary"], f"batched_inputs[{index}]['vocabulary']")
        if self.training:
            raise ValueError(f"batched_inputs[{index}] lacks the key 'vocabulary' (needed for training)")
        if self.test_vocabulary is not None:
            return self.test_vocabulary
        dataset = self._dataset(x)
        prompts = MetadataCatalog.get(dataset).get("text_prompts", None) if dataset else None
        if not prompts:
            raise ValueError(
                f"no vocabulary for batched_inputs[{index}]: give it a 'vocabulary', call "
                "model.set_vocabulary([...]), set MODEL.MQFORMER.TEST.VOCABULARY, or register "
                f"'text_prompts' in the metadata of its dataset ({dataset!r}, from its 'dataset_name' "
                "or DATASETS.TEST[0])"
            )
        return check_vocabulary(prompts, f"MetadataCatalog.get({dataset!r}).text_prompts")

    def _is_thing(self, vocabulary: Sequence[str], dataset: str) -> List[bool]:
        """Per text: a thing (segments kept apart) unless the dataset's metadata makes it stuff."""
        stuff = stuff_prompts(MetadataCatalog.get(dataset) if dataset else None)
        return [text not in stuff for text in vocabulary]

    def postprocess(self, outputs: Dict, batched_inputs: List[Dict], images: ImageList,
                    vocabularies: List[List[str]], local_to_union: List[Tensor]) -> List[Dict]:
        """Per image, the outputs of its task at its original size ("height", "width")."""
        results = []
        padded_size = tuple(images.tensor.shape[-2:])
        for index, x in enumerate(batched_inputs):
            image_size = images.image_sizes[index]
            output_size = (x.get("height", image_size[0]), x.get("width", image_size[1]))
            resize = post.ResizeSpec(padded_size, tuple(image_size), tuple(output_size))
            logits = outputs["pred_logits"][index][:, local_to_union[index]]
            results.append(self._image_outputs(
                self._task(x), logits, outputs["pred_masks"][index], outputs["pred_boxes"][index],
                vocabularies[index], resize, self._dataset(x),
            ))
        return results

    def _image_outputs(self, task: str, logits: Tensor, masks: Tensor, boxes: Tensor,
                       vocabulary: List[str], resize: post.ResizeSpec, dataset: str) -> Dict:
        result = {}
        wanted = TASK_OUTPUTS[task]
        if "instances" in wanted:
            result["instances"] = post.instance_inference(
                logits, masks, boxes, resize, self.max_detections, self.instance_score_threshold
            )
        if "sem_seg" in wanted:
            result["sem_seg"] = post.semantic_inference(logits, masks, resize)
        if "panoptic_seg" in wanted:
            result["panoptic_seg"] = post.panoptic_inference(
                logits, masks, resize, self._is_thing(vocabulary, dataset), self.object_mask_threshold,
                self.overlap_threshold,
            )
        if "referring" in wanted:
            result["referring"] = post.referring_inference(logits, masks, vocabulary, resize)
        return result


def build_criterion(cfg) -> SetCriterion:
    """The Hungarian matcher + set criterion; LOSS weights double as matching cost weights."""
    loss = cfg.MODEL.MQFORMER.LOSS
    matcher = HungarianMatcher(
        cost_class=loss.CLASS_WEIGHT, cost_bbox=loss.BOX_L1_WEIGHT, cost_giou=loss.GIOU_WEIGHT,
        cost_mask=loss.MASK_WEIGHT, cost_dice=loss.DICE_WEIGHT, num_points=loss.NUM_POINTS,
        focal_alpha=loss.FOCAL_ALPHA, focal_gamma=loss.FOCAL_GAMMA,
    )
    return SetCriterion(
        matcher=matcher, class_weight=loss.CLASS_WEIGHT, bbox_weight=loss.BOX_L1_WEIGHT,
        giou_weight=loss.GIOU_WEIGHT, mask_weight=loss.MASK_WEIGHT, dice_weight=loss.DICE_WEIGHT,
        focal_alpha=loss.FOCAL_ALPHA, focal_gamma=loss.FOCAL_GAMMA, num_points=loss.NUM_POINTS,
        oversample_ratio=loss.OVERSAMPLE_RATIO, importance_sample_ratio=loss.IMPORTANCE_SAMPLE_RATIO,
        denoising=cfg.MODEL.MQFORMER.DENOISING.ENABLED,
    )
