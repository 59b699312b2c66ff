"""Config keys of the training engine (optimizer, mixed precision), added to detectron2's SOLVER.

Detectron2's own keys keep their meaning; this adds only what MQ-Former's recipe (Mask DINO's:
AdamW, a 0.1 backbone learning rate, no weight decay on norms and embeddings, full-model gradient
clipping) needs and detectron2 lacks. Every key is read in `mqformer_d2/engine/`.
"""
from detectron2.config import CfgNode as CN


def add_solver_config(cfg: CN) -> CN:
    """Add the engine's SOLVER keys to `cfg` in place; return it."""
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
    return cfg

