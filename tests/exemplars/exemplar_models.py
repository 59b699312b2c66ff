"""The tiny exemplar model the exemplar tests build (a plain helper, importable by name)."""
import torch
from detectron2.modeling import build_model
from helpers import tiny_config


def exemplar_model(pooling: str = "attention", *options):
    """A tiny MQ-Former with an exemplar encoder (`pooling`), in eval mode, seeded."""
    torch.manual_seed(0)
    cfg = tiny_config("MODEL.MQFORMER.EXEMPLARS.ENABLED", True, "MODEL.MQFORMER.EXEMPLARS.POOLING", pooling, *options)
    return build_model(cfg).eval(), cfg
