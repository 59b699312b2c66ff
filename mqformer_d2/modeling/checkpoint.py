"""Loading backbone / Mask DINO / MQ-Former weights from a local file into MQ-Former.

`MQFormerCheckpointer` is detectron2's `DetectionCheckpointer` (which already logs missing and
unexpected keys) plus:
- a checkpoint whose names mostly do not exist in the model (e.g. a bare timm Swin or torchvision
  ResNet state dict) is matched by name suffix with detectron2's `align_and_update_state_dicts`
  ("layers.0.blocks.0.attn.qkv.weight" -> "backbone.swin.layers.0.blocks.0.attn.qkv.weight");
- a one-line key-mapping report: matched / missing / unexpected / wrong-shape counts.
"""
import logging

from detectron2.checkpoint import DetectionCheckpointer

logger = logging.getLogger(__name__)

# Below this fraction of checkpoint names found verbatim in the model, match by suffix instead.
_VERBATIM_MATCH_FRACTION = 0.5


class MQFormerCheckpointer(DetectionCheckpointer):
    """Use as `MQFormerCheckpointer(model).load(cfg.MODEL.WEIGHTS)` (arguments as detectron2's)."""

    def _load_model(self, checkpoint):
        state = {key.removeprefix("module."): value for key, value in checkpoint["model"].items()}
        checkpoint["model"] = state
        model_keys = set(self.model.state_dict())
        verbatim = sum(key in model_keys for key in state)
        if state and verbatim < _VERBATIM_MATCH_FRACTION * len(state):
            logger.info(
                "Only %d of %d checkpoint keys name model parameters: matching them by suffix.",
                verbatim, len(state),
            )
            checkpoint["matching_heuristics"] = True
        num_checkpoint_keys = len(state)
        incompatible = super()._load_model(checkpoint)
        log_key_mapping_report(model_keys, num_checkpoint_keys, incompatible)
        return incompatible


def log_key_mapping_report(model_keys, num_checkpoint_keys: int, incompatible) -> dict:
    """Log and return {matched, missing, unexpected, wrong_shape} counts of one load."""
    wrong_shape = len(incompatible.incorrect_shapes)
    missing = len(incompatible.missing_keys)
    report = {
        "matched": len(model_keys) - missing - wrong_shape,
        "missing": missing,
        "unexpected": len(incompatible.unexpected_keys),
        "wrong_shape": wrong_shape,
        "checkpoint_keys": num_checkpoint_keys,
    }
    logger.info(
        "Weights key mapping: %(matched)d model keys loaded, %(missing)d missing, "
        "%(unexpected)d unexpected, %(wrong_shape)d with the wrong shape "
        "(checkpoint holds %(checkpoint_keys)d keys).", report,
    )
    return report
