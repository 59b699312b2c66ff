"""The models a diagnosis compares: a run's trained model and its random-initialisation baseline."""
import logging
import os
from typing import Tuple

from detectron2.config import CfgNode
from detectron2.modeling import build_model
from detectron2.utils.env import seed_all_rng
from torch import nn

from mqformer_d2.checkpoint import MQFormerCheckpointer
from mqformer_d2.engine import build_config

logger = logging.getLogger(__name__)


def run_config(run_dir: str) -> CfgNode:
    """The frozen config of a training run's folder (its config.yaml), on CPU."""
    return build_config(os.path.join(run_dir, "config.yaml"), cpu=True)


def load_trained_model(cfg: CfgNode, weights: str) -> nn.Module:
    """The model of `cfg` with `weights` (a checkpoint file) loaded, in eval mode."""
    model = build_model(cfg)
    MQFormerCheckpointer(model).load(weights)
    return model.eval()


def random_init_config(cfg: CfgNode) -> CfgNode:
    """`cfg` without any weights to load: no MODEL.WEIGHTS, no pretrained text tower."""
    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.MQFORMER.TEXT_ENCODER.PRETRAINED = ""
    cfg.freeze()
    return cfg


def build_random_init_model(cfg: CfgNode) -> nn.Module:
    """The baseline: the model of `cfg`, freshly initialised after seeding every RNG with
    cfg.SEED (0 if negative), no weights loaded (`random_init_config`), in eval mode. Batch-norm
    layers keep their initial statistics (mean 0, variance 1)."""
    seed_all_rng(cfg.SEED if cfg.SEED >= 0 else 0)
    model = build_model(random_init_config(cfg))
    logger.info("random-init baseline built with seed %d, no weights loaded", cfg.SEED if cfg.SEED >= 0 else 0)
    return model.eval()


def model_pair(run_dir: str, with_baseline: bool = True) -> Tuple[CfgNode, nn.Module, nn.Module]:
    """(config, trained model from run_dir/model_final.pth, random-init baseline or None)."""
    cfg = run_config(run_dir)
    baseline = build_random_init_model(cfg) if with_baseline else None
    return cfg, load_trained_model(cfg, os.path.join(run_dir, "model_final.pth")), baseline
