"""MQ-Former (Mixed-Query Transformer) for Detectron2.

Data flow: image -> backbone -> pixel decoder -> mixed-query decoder -> heads -> losses / post-process.
Importing this package registers its components into Detectron2's registries.
"""
from . import layers, modeling
from . import evaluation  # noqa: F401  (DatasetEvaluators; build_evaluator)
from .config import add_mqformer_config
from .engine import MQFormerPredictor, get_mqformer_cfg

__version__ = "0.1.0"

# Last, once every component is registered: the user's registration modules named in
# $MQFORMER_REGISTER_MODULES (mqformer_d2/registration.py), also in spawned worker processes.
from .registration import import_registration_modules  # noqa: E402

import_registration_modules()
