"""The MQ-Former meta-architecture: image + texts -> losses (training) or task outputs (inference)."""
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
from detectron2.config import configurable
from detectron2.data import MetadataCatalog
from detectron2.modeling import META_ARCH_REGISTRY, Backbone, build_backbone
from detectron2.structures import ImageList
from torch import Tensor, nn

from ...exemplars.encoder import build_exemplar_encoder
from ..criterion import batch_targets, build_criterion
from ..decoder import build_decoder
from ..decoder.region_classifier import RegionClassifier, build_region_classifier
from ..denoising import DenoisingQueries, build_denoising_queries
from ..pixel_decoder import PixelDecoderOutput, build_pixel_decoder
from ..text_batch import TextBatch
from ..text_encoder import build_text_encoder
from . import postprocessing as post
from .training_diagnostics import log_training_diagnostics
from .vocabulary import check_vocabulary, stuff_prompts

TASK_OUTPUTS, SEMANTIC_OUTPUTS = post.TASK_OUTPUTS, post.SEMANTIC_OUTPUTS


class EncodedBatch(NamedTuple):
    """`MQFormer.encode`'s result: the padded images (`ImageList`, (B, 3, Hpad, Wpad)), the pixel
    decoder's `PixelDecoderOutput` and the batch's `TextBatch`."""

    images: ImageList
    pixel: PixelDecoderOutput
    text: TextBatch


@META_ARCH_REGISTRY.register()
class MQFormer(nn.Module):
    """Mixed-Query Transformer (Mask DINO + open vocabulary + mixed queries).

    `encode`: normalise -> backbone -> pixel decoder, and text embeddings of the batch's union
    vocabulary; then the mixed-query decoder (prediction heads at every layer) -> criterion losses
    (training) or `postprocess` (inference). Box-prompted decoding: `box_prompting`; matching
    analyses: `mqformer_d2.analysis.matching`.

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
        max_detections, instance_score_threshold, object_mask_threshold, overlap_threshold,
            class_temperature: post-processing settings (see `postprocessing`).
        semantic_max_scores_bytes: a semantic output whose (T, H, W) float32 scores would exceed
            this is given as per-pixel labels and scores (`semantic_output`).
        region_classifier: optional second class head on pooled mask features (trained beside the
            criterion, fused with the queries' class logits at inference).
        exemplar_encoder: optional `mqformer_d2.exemplars.ExemplarEncoder` (prompts given as example
            boxes; used by `mqformer_d2.exemplars.prompting`, not by `forward`).
    """

    @configurable
    def __init__(self, *, backbone: Backbone, pixel_decoder: nn.Module, text_encoder: nn.Module,
                 decoder: nn.Module, criterion: Optional[nn.Module], pixel_mean: Sequence[float],
                 pixel_std: Sequence[float], size_divisibility: int, denoising: Optional[Dict],
                 test_task: str = "all", test_vocabulary: Sequence[str] = (), test_dataset: str = "",
                 max_detections: int = 100, instance_score_threshold: float = 0.0,
                 object_mask_threshold: float = 0.25, overlap_threshold: float = 0.8,
                 class_temperature: float = 0.0, region_classifier: Optional[RegionClassifier] = None,
                 semantic_max_scores_bytes: int = 1 << 30, exemplar_encoder: Optional[nn.Module] = None):
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
        self.postprocess_settings = post.PostprocessSettings(
            max_detections, instance_score_threshold, object_mask_threshold, overlap_threshold, class_temperature)
        self.region_classifier = region_classifier
        self.semantic_max_scores_bytes = semantic_max_scores_bytes
        self.exemplar_encoder = exemplar_encoder

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
            "class_temperature": mq.TEST.CLASS_TEMPERATURE,
            "region_classifier": build_region_classifier(cfg),
            "semantic_max_scores_bytes": int(mq.TEST.SEMANTIC_MAX_SCORES_MB * 2**20),
            "exemplar_encoder": build_exemplar_encoder(cfg),
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
        if not self.training:
            return self.inference(batched_inputs)
        if self.criterion is None:
            raise RuntimeError("MQFormer was built without a criterion: it can only run in eval mode")
        # image -> backbone -> pixel decoder; vocabularies -> text encoder
        encoded = self.encode(batched_inputs)
        targets = batch_targets(batched_inputs, encoded.text.local_to_union, tuple(encoded.images.tensor.shape[-2:]),
                                self.device)
        denoising = self._denoising_queries(targets, encoded.text)
        # mixed-query decoder -> heads (every layer) -> losses
        outputs = self.decoder(encoded.pixel, encoded.text, denoising)
        heads = getattr(self.decoder, "heads", None)
        log_training_diagnostics(outputs, targets, encoded.text, heads.class_calibration() if heads else None,
                                 encoded.pixel.mask_valid_ratio)
        dn_meta = None if denoising is None else denoising.meta
        losses = self.criterion(outputs, targets, encoded.text, dn_meta)
        if self.region_classifier is not None:
            losses.update(self.region_classifier.loss(encoded.pixel.mask_features, encoded.pixel.mask_valid_ratio,
                                                      targets, encoded.text))
        return losses

    def inference(self, batched_inputs: List[Dict]) -> List[Dict]:
        """Per image, the outputs of its task at its original size (see `forward`)."""
        encoded = self.encode(batched_inputs)
        outputs = self.decoder(encoded.pixel, encoded.text)
        if self.region_classifier is not None and self.region_classifier.test_weight > 0:
            outputs["pred_logits"] = self.region_classifier.fuse(
                outputs, encoded.pixel.mask_features, encoded.pixel.mask_valid_ratio, encoded.text)
        return self.postprocess(outputs, batched_inputs, encoded.images, encoded.text)

    def encode(self, batched_inputs: List[Dict], vocabularies: Optional[Sequence[Sequence[str]]] = None,
               use_templates: Optional[bool] = None) -> EncodedBatch:
        """What the decoder reads: normalised, padded images -> backbone -> pixel decoder, and the
        batch's union vocabulary -> text encoder.

        Args:
            batched_inputs: B model inputs with "image" (3, h, w).
            vocabularies: B lists of texts; default: each input's "vocabulary" (at inference falling
                back to set_vocabulary / MODEL.MQFORMER.TEST.VOCABULARY / the dataset's metadata).
            use_templates: average the text embeddings over the prompt templates; default: at
                inference unless an input of the batch is a referring one.

        Returns:
            `EncodedBatch`: images (B, 3, Hpad, Wpad), pixel (`PixelDecoderOutput`), text
            (`TextBatch`: texts (T), embeddings (T, C), valid (B, T), local_to_union).
        """
        images, padding_mask = self.preprocess_image(batched_inputs)
        if vocabularies is None:
            vocabularies = [self._vocabulary(x, index) for index, x in enumerate(batched_inputs)]
        if use_templates is None:
            use_templates = not self.training and all(self._task(x) != "referring" for x in batched_inputs)
        text = TextBatch.from_vocabularies(
            vocabularies, lambda texts: self.text_encoder(texts, use_templates=use_templates), self.device)
        pixel = self.pixel_decoder(self.backbone(images.tensor), padding_mask)
        return EncodedBatch(images, pixel, text)

    def _denoising_queries(self, targets: List[Dict[str, Tensor]], text: TextBatch) -> Optional[DenoisingQueries]:
        """The training batch's denoising queries (None when disabled or when it has no target)."""
        if self.denoising is None:
            return None
        return build_denoising_queries(targets, text.embeddings, text.valid,
                                       num_matching_queries=self.decoder.num_queries, **self.denoising)

    def preprocess_image(self, batched_inputs: List[Dict]) -> Tuple[ImageList, Tensor]:
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

    def _is_thing(self, vocabulary: Sequence[str], dataset: str, stuff: Sequence[str] = ()) -> List[bool]:
        """Per text: a thing (segments kept apart) unless it is in `stuff` (the input's
        "stuff_prompts") or the dataset's metadata makes it stuff."""
        stuff = set(stuff) | stuff_prompts(MetadataCatalog.get(dataset) if dataset else None)
        return [text not in stuff for text in vocabulary]

    def postprocess(self, outputs: Dict, batched_inputs: List[Dict], images: ImageList, text: TextBatch) -> List[Dict]:
        """Per image, the outputs of its task at its original size ("height", "width"): the
        decoder's final predictions restricted to the image's own texts (T_b columns)."""
        results = []
        padded_size = tuple(images.tensor.shape[-2:])
        for index, x in enumerate(batched_inputs):
            image_size = images.image_sizes[index]
            output_size = (x.get("height", image_size[0]), x.get("width", image_size[1]))
            resize = post.ResizeSpec(padded_size, tuple(image_size), tuple(output_size))
            logits = outputs["pred_logits"][index][:, text.local_to_union[index]]
            task = self._task(x)
            results.append(self._image_outputs(
                task, logits, outputs["pred_masks"][index], outputs["pred_boxes"][index],
                text.vocabulary(index), resize, self._dataset(x),
                self.semantic_output(x, task, logits.shape[1], resize), x.get("stuff_prompts", ()),
            ))
        return results

    def semantic_output(self, x: Dict, task: str, num_texts: int, resize: post.ResizeSpec) -> str:
        """How an input's semantic output is given: "scores", the (T, H, W) map `sem_seg`, or
        "labels", per-pixel `sem_seg_labels` (H, W) and `sem_seg_scores` (H, W) computed a chunk of
        texts at a time. The input's "sem_seg_output" when set (the evaluation mapper asks for
        scores, which SemSegEvaluator reads); else "labels" when the map's float32 bytes would
        exceed MODEL.MQFORMER.TEST.SEMANTIC_MAX_SCORES_MB. Foreground maps are always scores."""
        wanted = x.get("sem_seg_output")
        if wanted is not None:
            if wanted not in SEMANTIC_OUTPUTS:
                raise ValueError(f"input 'sem_seg_output' {wanted!r} is not one of {SEMANTIC_OUTPUTS}")
            return wanted
        height, width = resize.output_size
        too_big = 4 * num_texts * height * width > self.semantic_max_scores_bytes
        return "labels" if too_big and task != "foreground" else "scores"

    def _image_outputs(self, task: str, logits: Tensor, masks: Tensor, boxes: Tensor,
                       vocabulary: List[str], resize: post.ResizeSpec, dataset: str,
                       semantic_output: str = "scores", stuff: Sequence[str] = ()) -> Dict:
        is_thing = self._is_thing(vocabulary, dataset, stuff) if "panoptic_seg" in TASK_OUTPUTS[task] else []
        return post.task_outputs(task, logits, masks, boxes, resize, self.postprocess_settings, vocabulary,
                                 is_thing, semantic_output)

