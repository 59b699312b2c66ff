"""Entry points: the trainer behind train_net.py, the predictors, and drawing for the demo."""
from .defaults import argument_parser, build_config, get_mqformer_cfg, setup
from .launcher import launch_main, main
from .optimizer import build_optimizer, build_param_groups
from .predictor import MQFormerPredictor
from .trainer import MQFormerTrainer
from .visualization import draw_prediction

__all__ = [
    "MQFormerPredictor", "MQFormerTrainer", "argument_parser", "build_config",
    "build_optimizer", "build_param_groups", "draw_prediction", "get_mqformer_cfg", "launch_main",
    "main", "setup",
]
