"""Every config key MQ-Former adds to detectron2's: `cfg.MODEL.MQFORMER` (one small node per
component), the data keys (INPUT / DATASETS), the engine's SOLVER keys and the evaluation's TEST key.

Every key here is read by exactly the code that builds or runs what it configures (the
`from_config` of the meta-architecture, the `build_*` function of a registry, the data mapper and
loader, the optimizer and trainer); tests/test_config_keys.py fails when a key is no longer read
at its full path. Detectron2's own keys keep their meaning. Defaults follow the paper (100
learnable + 300 conditional queries, Mask DINO hyper-parameters with a ResNet-50).
"""
from detectron2.config import CfgNode as CN


def add_mqformer_config(cfg: CN) -> CN:
    """Add MQ-Former's keys (see the module docstring) to `cfg` in place; return it."""
    _add_data_config(cfg)
    _add_solver_config(cfg)
    # Referring evaluation protocol: every sentence of each expression (the standard), or only its
    # first sentence (X-Decoder's protocol).
    cfg.TEST.REFERRING_FIRST_SENTENCE_ONLY = False
    cfg.MODEL.MQFORMER = CN()
    mq = cfg.MODEL.MQFORMER
    # Width of the pixel-decoder memory, the mask features, the decoder queries and the projected
    # text embeddings (they meet in dot products, so they share one width).
    mq.HIDDEN_DIM = 256
    # Padded batch sizes are multiples of this (the coarsest encoder level has stride 64).
    mq.SIZE_DIVISIBILITY = 64

    _add_swin_config(mq)
    _add_text_encoder_config(mq)
    _add_pixel_decoder_config(mq)
    _add_decoder_config(mq)
    _add_denoising_config(mq)
    _add_loss_config(mq)
    _add_region_classifier_config(mq)
    _add_exemplar_config(mq)
    _add_test_config(mq)
    _add_matting_config(mq)
    return cfg


def _add_swin_config(mq: CN) -> None:
    mq.SWIN = CN()
    # timm model name of the Swin variant (tiny / base / large); built without downloading weights,
    # which come from MODEL.WEIGHTS.
    mq.SWIN.MODEL_NAME = "swin_tiny_patch4_window7_224"
    # Stochastic depth rate of the Swin blocks (Mask DINO: 0.3 for Swin-L).
    mq.SWIN.DROP_PATH_RATE = 0.3
    # Which of res2..res5 the backbone returns.
    mq.SWIN.OUT_FEATURES = ["res2", "res3", "res4", "res5"]


def _add_text_encoder_config(mq: CN) -> None:
    mq.TEXT_ENCODER = CN()
    # Name in TEXT_ENCODER_REGISTRY.
    mq.TEXT_ENCODER.NAME = "OpenCLIPTextEncoder"
    # open_clip model config name (e.g. "ViT-B-32", or the tiny "mqformer-tiny-text").
    mq.TEXT_ENCODER.MODEL_NAME = "ViT-B-32"
    # open_clip pretrained tag (downloads) or a local weights file; "" = random initialisation.
    mq.TEXT_ENCODER.PRETRAINED = ""
    # Keep the CLIP text tower frozen (only the projection to HIDDEN_DIM trains).
    mq.TEXT_ENCODER.FREEZE = True
    # Prompt templates ("a photo of a {}.") averaged for class-name vocabularies at inference;
    # empty = encode the names as they are. Referring sentences are never templated.
    mq.TEXT_ENCODER.PROMPT_TEMPLATES = []
    # Add a trainable bag-of-words embedding of each text's tokens to the tower's features
    # (text_encoder/token_bag.py): distinct words start near-orthogonal, where a tower trained from
    # scratch starts every short text in one direction. Off for pretrained CLIP towers.
    mq.TEXT_ENCODER.TOKEN_BAG = False


def _add_pixel_decoder_config(mq: CN) -> None:
    mq.PIXEL_DECODER = CN()
    # Name in PIXEL_DECODER_REGISTRY.
    mq.PIXEL_DECODER.NAME = "MSDeformAttnPixelDecoder"
    # Backbone features fed to the deformable encoder (finest first).
    mq.PIXEL_DECODER.IN_FEATURES = ["res3", "res4", "res5"]
    # Extra coarser levels made by stride-2 convolutions on the coarsest input (1 = stride 64).
    mq.PIXEL_DECODER.NUM_EXTRA_LEVELS = 1
    # Backbone feature fused into the stride-4 mask feature map.
    mq.PIXEL_DECODER.MASK_IN_FEATURE = "res2"
    # Deformable encoder depth, heads, sampling points, FFN width and dropout.
    mq.PIXEL_DECODER.NUM_LAYERS = 6
    mq.PIXEL_DECODER.NUM_HEADS = 8
    mq.PIXEL_DECODER.NUM_POINTS = 4
    mq.PIXEL_DECODER.DIM_FEEDFORWARD = 2048
    mq.PIXEL_DECODER.DROPOUT = 0.0


def _add_decoder_config(mq: CN) -> None:
    mq.DECODER = CN()
    # Name in DECODER_REGISTRY.
    mq.DECODER.NAME = "MixedQueryDecoder"
    # Learnable queries (content + anchor box learned from scratch); 0 = conditional-only.
    mq.DECODER.NUM_LEARNABLE_QUERIES = 100
    # Conditional queries selected top-K from the encoder proposals; 0 = learnable-only.
    mq.DECODER.NUM_CONDITIONAL_QUERIES = 300
    # Decoder depth, heads, deformable sampling points, FFN width and dropout.
    mq.DECODER.NUM_LAYERS = 9
    mq.DECODER.NUM_HEADS = 8
    mq.DECODER.NUM_POINTS = 4
    mq.DECODER.DIM_FEEDFORWARD = 2048
    mq.DECODER.DROPOUT = 0.0
    # Anchor boxes of conditional queries from the masks their proposals predict (Mask DINO's
    # mask-enhanced anchor initialisation) instead of from the proposal box head.
    mq.DECODER.MASK_ENHANCED_ANCHORS = True
    # How the conditional queries are selected from the encoder tokens (decoder/query_selection.py):
    # "best_text" = the top tokens by their best score over the image's texts (Mask DINO's two-stage
    # selection); "per_text" = the texts take turns, each its best remaining token, so that stuff,
    # which covers most tokens, cannot take every query.
    mq.DECODER.SELECTION_RANKING = "best_text"
    # Also predict (and supervise) from the queries before the first decoder layer.
    mq.DECODER.INITIAL_PREDICTION = True
    # Side S of a RoIAlign grid of the stride-4 mask features under each query's anchor box, added
    # to the query in every layer after deformable cross-attention (`decoder/box_readout.py`): the
    # outline inside the box, which a few deformable sampling points miss. 0 = off (Mask DINO).
    mq.DECODER.BOX_READOUT_SIZE = 0
    # Class logits = scale * similarity(query, text) + bias (decoder/prediction_heads.py):
    # "cosine" (unit vectors) or "dot" (GLIP's unnormalised product / sqrt(HIDDEN_DIM)).
    mq.DECODER.CLASS_SIMILARITY = "cosine"
    # 0 = the scale is learned (from 1 / 0.07 for cosine, 1 for dot); > 0 = fixed at this value
    # (Detic: 50 for cosine).
    mq.DECODER.CLASS_LOGIT_SCALE = 0.0


def _add_denoising_config(mq: CN) -> None:
    mq.DENOISING = CN()
    # Train with denoising queries (noised ground-truth boxes and texts), as in Mask DINO.
    mq.DENOISING.ENABLED = True
    # Total denoising queries per image (split into groups of the image's target count).
    mq.DENOISING.NUM_QUERIES = 100
    # Fraction of denoising queries whose text label is replaced by another of the vocabulary.
    mq.DENOISING.LABEL_NOISE_RATIO = 0.2
    # Box noise: shifts and scales up to this fraction of the box size.
    mq.DENOISING.BOX_NOISE_SCALE = 0.4
    # Map the (label-noised) text embedding through Linear + LayerNorm before it becomes a
    # denoising query's content, so it starts at the scale of the other queries' normalised
    # content (OpenSeeD embeds its labels first); False = the projected text embedding as it is.
    mq.DENOISING.CONTENT_PROJECTION = False


def _add_loss_config(mq: CN) -> None:
    mq.LOSS = CN()
    # Loss weights, also used as the Hungarian matching cost weights (as in Mask DINO).
    mq.LOSS.CLASS_WEIGHT = 4.0
    mq.LOSS.BOX_L1_WEIGHT = 5.0
    mq.LOSS.GIOU_WEIGHT = 2.0
    mq.LOSS.MASK_WEIGHT = 5.0
    mq.LOSS.DICE_WEIGHT = 5.0
    # Sigmoid focal loss parameters of the text-similarity class loss.
    mq.LOSS.FOCAL_ALPHA = 0.25
    mq.LOSS.FOCAL_GAMMA = 2.0
    # Points sampled per mask for the mask losses (importance sampling, bounded memory).
    mq.LOSS.NUM_POINTS = 12544
    mq.LOSS.OVERSAMPLE_RATIO = 3.0
    mq.LOSS.IMPORTANCE_SAMPLE_RATIO = 0.75


def _add_region_classifier_config(mq: CN) -> None:
    mq.REGION_CLASSIFIER = CN()
    # A second class head that names regions from the stride-4 mask features pooled under them
    # (decoder/region_classifier.py): trained on every ground-truth object of the batch, fused with
    # the queries' own class probabilities at inference. "" = off; "mask_mean" (FC-CLIP's mask
    # pooling), "box_grid" (a RoIAlign grid under the box) or "mask_grid" (grids of the features
    # times the mask and of the mask, under the mask's box).
    mq.REGION_CLASSIFIER.POOLING = ""
    # Side S of the "box_grid" / "mask_grid" RoIAlign grids.
    mq.REGION_CLASSIFIER.GRID_SIZE = 4
    # Weight of its cross-entropy loss (loss_region_ce).
    mq.REGION_CLASSIFIER.LOSS_WEIGHT = 1.0
    # Inference: p = p_query^(1 - w) * p_region^w (FC-CLIP's geometric ensemble); 0 = the queries'
    # own class probabilities.
    mq.REGION_CLASSIFIER.TEST_WEIGHT = 0.5


def _add_exemplar_config(mq: CN) -> None:
    mq.EXEMPLARS = CN()
    # Build the exemplar encoder (mqformer_d2/exemplars/): prompts given as example boxes or masks
    # on images, embedded from the pixel decoder's features and pooled into one prompt embedding.
    mq.EXEMPLARS.ENABLED = False
    # How K exemplars of a prompt are pooled: "mean", "max", "attention" or "gated_attention"
    # (MIVC's; the attention weights are a softmax over the K exemplars, so order does not matter).
    mq.EXEMPLARS.POOLING = "attention"
    # Hidden width of the attention poolings (rows of V and U in w^T tanh(V h)).
    mq.EXEMPLARS.ATTENTION_DIM = 32
    # Side of the RoIAlign grid read under each exemplar's box on every feature map.
    mq.EXEMPLARS.GRID_SIZE = 4


def _add_test_config(mq: CN) -> None:
    mq.TEST = CN()
    # Outputs when an input dict has no "task": one of instance, detection, semantic, panoptic,
    # referring, foreground, or "all" (instances + sem_seg + panoptic_seg + referring).
    mq.TEST.TASK = "all"
    # Default test vocabulary; empty = the `text_prompts` of DATASETS.TEST[0]'s metadata.
    mq.TEST.VOCABULARY = []
    # Instances scoring at most this are dropped (keeps at most TEST.DETECTIONS_PER_IMAGE).
    mq.TEST.INSTANCE_SCORE_THRESHOLD = 0.0
    # Panoptic: queries scoring at most this are ignored; a segment keeps only if this fraction
    # of its mask survives the overlap resolution.
    mq.TEST.OBJECT_MASK_THRESHOLD = 0.25
    mq.TEST.OVERLAP_THRESHOLD = 0.8
    # Semantic and panoptic inference: > 0 replaces each query's sigmoid class probabilities p by
    # softmax(p / T) over the texts (Mask DINO's PANO_TRANSFORM_EVAL, T = 0.06); 0 = off.
    mq.TEST.CLASS_TEMPERATURE = 0.0
    # Semantic outputs whose (texts x H x W) float32 score map would take more MiB than this come
    # as per-pixel labels and scores (sem_seg_labels, sem_seg_scores), computed a chunk of texts
    # at a time; evaluation always asks for the map (SemSegEvaluator reads it). 0 = always labels.
    mq.TEST.SEMANTIC_MAX_SCORES_MB = 1024.0


def _add_matting_config(mq: CN) -> None:
    mq.MATTING = CN()
    # Weights of the matting refinement (mqformer_d2/matting/, trained by tools/train_matting.py);
    # `MQFormerPredictor(..., matting=True)` and `demo/demo.py --matting` need them.
    mq.MATTING.WEIGHTS = ""
    # Width in pixels of the trimap's unknown band on each side of a prompted mask's boundary.
    mq.MATTING.TRIMAP_BAND = 8
    # Longest image side the refinement runs at; larger images are scaled down for it and the
    # alpha scaled back up.
    mq.MATTING.RESOLUTION = 512


def _add_data_config(cfg: CN) -> None:
    """The data pipeline's keys: augmentation, vocabulary sampling, multi-dataset sampling."""
    # Large-scale jitter for training: resize by a random scale of IMAGE_SIZE, then crop/pad to a
    # square of IMAGE_SIZE (detectron2's ResizeScale + FixedSizeCrop).
    cfg.INPUT.IMAGE_SIZE = 1024
    cfg.INPUT.MIN_SCALE = 0.1  # smallest random scale of IMAGE_SIZE
    cfg.INPUT.MAX_SCALE = 2.0  # largest random scale of IMAGE_SIZE
    # Negative texts (other class names of the image's dataset) added to each training image's
    # vocabulary besides its positive texts.
    cfg.INPUT.NUM_NEGATIVE_TEXTS = 20
    # One sampling weight per DATASETS.TRAIN entry; images are drawn dataset-first with these
    # relative probabilities. Empty: proportional to dataset sizes (plain concatenation).
    cfg.DATASETS.TRAIN_SAMPLING_RATIOS = []
    # What to do with bad annotations of a training dataset (degenerate box, out-of-image box,
    # empty polygon, referring annotation without sentence, unknown category), found before
    # training: "warn" logs one line per dataset and reason and handles them as docs/usage.md
    # says; "error" raises instead. A training dataset with no usable target is always an error.
    cfg.DATALOADER.BAD_ANNOTATIONS = "warn"


def _add_solver_config(cfg: CN) -> None:
    """The training engine's SOLVER keys: only what MQ-Former's recipe (Mask DINO's: AdamW, a 0.1
    backbone learning rate, no weight decay on norms and embeddings, full-model gradient clipping)
    needs and detectron2 lacks."""
    # Optimizer: "ADAMW" (MQ-Former's) or "SGD" (detectron2's, with SOLVER.MOMENTUM / NESTEROV).
    cfg.SOLVER.OPTIMIZER = "ADAMW"
    # Learning rate of the backbone's parameters (model.backbone.*) relative to SOLVER.BASE_LR.
    cfg.SOLVER.BACKBONE_MULTIPLIER = 0.1
    # Weight decay of embeddings: nn.Embedding tables and parameters named "*embed" / "*embedding"
    # (e.g. the pixel decoder's level_embed). Norm layers use detectron2's SOLVER.WEIGHT_DECAY_NORM.
    cfg.SOLVER.WEIGHT_DECAY_EMBED = 0.0
    # Compute dtype of mixed precision (SOLVER.AMP.ENABLED): "float16" or "bfloat16".
    cfg.SOLVER.AMP.PRECISION = "float16"
    # SOLVER.CLIP_GRADIENTS.CLIP_TYPE also accepts "full_model": clip the norm (NORM_TYPE) of all
    # gradients together to CLIP_VALUE, besides detectron2's per-parameter "value" and "norm".
