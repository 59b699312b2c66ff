"""The optimizer of MQ-Former's recipe: parameter groups, optimizer type, gradient clipping, and
the learning-rate schedules (detectron2's, plus a linear decay).

Parameter groups come from detectron2's `get_default_optimizer_params` (norm layers get
SOLVER.WEIGHT_DECAY_NORM, the backbone's learning rate is scaled by SOLVER.BACKBONE_MULTIPLIER);
embeddings are then given SOLVER.WEIGHT_DECAY_EMBED. Gradient clipping is detectron2's
(`maybe_add_gradient_clipping`), plus a "full_model" CLIP_TYPE that clips all gradients together.
"""
import logging
from typing import Any, Dict, List, Set, Type

import torch
from detectron2.solver import get_default_optimizer_params
from detectron2.solver import build_lr_scheduler as detectron2_lr_scheduler
from detectron2.solver.build import maybe_add_gradient_clipping, reduce_param_groups
from detectron2.solver.lr_scheduler import LRMultiplier, WarmupParamScheduler
from fvcore.common.param_scheduler import LinearParamScheduler
from torch import nn

logger = logging.getLogger(__name__)

FULL_MODEL_CLIPPING = "full_model"


def embedding_parameter_ids(model: nn.Module) -> Set[int]:
    """ids of the embedding parameters of `model`: the tables of nn.Embedding modules and the
    parameters registered directly under a name ending in "embed" or "embedding" (e.g.
    `level_embed`; `mask_embed`, a module holding linear layers, is not one)."""
    ids = set()
    for module in model.modules():
        for name, parameter in module.named_parameters(recurse=False):
            if isinstance(module, nn.Embedding) or name.endswith(("embed", "embedding")):
                ids.add(id(parameter))
    return ids


def build_param_groups(cfg, model: nn.Module) -> List[Dict[str, Any]]:
    """Trainable parameters of `model` in groups with their own "lr" and "weight_decay"."""
    solver = cfg.SOLVER
    backbone_multiplier = solver.BACKBONE_MULTIPLIER

    def lr_factor(name: str) -> float:
        return backbone_multiplier if name.startswith("backbone.") else 1.0

    groups = get_default_optimizer_params(
        model,
        base_lr=solver.BASE_LR,
        weight_decay=solver.WEIGHT_DECAY,
        weight_decay_norm=solver.WEIGHT_DECAY_NORM,
        lr_factor_func=lr_factor,
    )
    embeddings = embedding_parameter_ids(model)
    per_parameter = []
    for group in groups:
        hyperparameters = {key: value for key, value in group.items() if key != "params"}
        for parameter in group["params"]:
            own = dict(hyperparameters)
            if id(parameter) in embeddings:
                own["weight_decay"] = solver.WEIGHT_DECAY_EMBED
            per_parameter.append({"params": [parameter], **own})
    return reduce_param_groups(per_parameter)


def with_full_model_clipping(optimizer_type: Type[torch.optim.Optimizer], max_norm: float,
                             norm_type: float) -> Type[torch.optim.Optimizer]:
    """A subclass of `optimizer_type` whose `step` first clips the norm of all gradients of all
    its parameter groups together (torch's clip_grad_norm_) to `max_norm`. Under mixed precision
    the GradScaler unscales the gradients before calling `step`, so the norm is the true one."""

    class FullModelGradientClipping(optimizer_type):
        def step(self, closure=None):
            parameters = [p for group in self.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(parameters, max_norm, norm_type)
            return super().step(closure)

    FullModelGradientClipping.__name__ = f"{optimizer_type.__name__}WithFullModelGradientClipping"
    FullModelGradientClipping.__qualname__ = FullModelGradientClipping.__name__
    return FullModelGradientClipping


def add_gradient_clipping(cfg, optimizer_type: Type[torch.optim.Optimizer]) -> Type[torch.optim.Optimizer]:
    """`optimizer_type`, wrapped for SOLVER.CLIP_GRADIENTS when it is enabled."""
    clip = cfg.SOLVER.CLIP_GRADIENTS
    if clip.ENABLED and clip.CLIP_TYPE == FULL_MODEL_CLIPPING:
        return with_full_model_clipping(optimizer_type, clip.CLIP_VALUE, clip.NORM_TYPE)
    if clip.ENABLED and clip.CLIP_TYPE not in ("value", "norm"):
        raise ValueError(f"SOLVER.CLIP_GRADIENTS.CLIP_TYPE: {clip.CLIP_TYPE!r} is not one of "
                         f"'{FULL_MODEL_CLIPPING}', 'value', 'norm'")
    return maybe_add_gradient_clipping(cfg, optimizer_type)


def build_optimizer(cfg, model: nn.Module) -> torch.optim.Optimizer:
    """SOLVER.OPTIMIZER ("ADAMW" or "SGD") over `build_param_groups`, with gradient clipping."""
    solver = cfg.SOLVER
    params = build_param_groups(cfg, model)
    name = solver.OPTIMIZER.upper()
    # foreach: torch picks the multi-tensor update by itself only for CUDA parameters; on CPU it
    # halves the time of an AdamW step of the tiny shapes model (64 -> 34 ms on 2 cores; the
    # whole training step is in docs/benchmarks.md).
    if name == "ADAMW":
        optimizer_type, kwargs = torch.optim.AdamW, {"foreach": True}
    elif name == "SGD":
        optimizer_type, kwargs = torch.optim.SGD, {"momentum": solver.MOMENTUM, "nesterov": solver.NESTEROV,
                                                   "foreach": True}
    else:
        raise ValueError(f"SOLVER.OPTIMIZER: {solver.OPTIMIZER!r} is not one of 'ADAMW', 'SGD'")
    optimizer = add_gradient_clipping(cfg, optimizer_type)(params, lr=solver.BASE_LR, **kwargs)
    logger.info("Optimizer %s with %d parameter groups", type(optimizer).__name__, len(params))
    return optimizer


LINEAR_SCHEDULE = "WarmupLinearLR"


def build_lr_scheduler(cfg, optimizer: torch.optim.Optimizer):
    """detectron2's SOLVER.LR_SCHEDULER_NAME schedules, plus "WarmupLinearLR": after the warm-up,
    a linear decay from BASE_LR to BASE_LR_END at MAX_ITER (the schedule that "Budgeted Training",
    Li, Yumer and Ramanan, ICLR 2020, found best when the iteration budget is fixed)."""
    solver = cfg.SOLVER
    if solver.LR_SCHEDULER_NAME != LINEAR_SCHEDULE:
        return detectron2_lr_scheduler(cfg, optimizer)
    end_value = solver.BASE_LR_END / solver.BASE_LR
    if not 0.0 <= end_value <= 1.0:
        raise ValueError(f"SOLVER.BASE_LR_END ({solver.BASE_LR_END}) must lie in [0, SOLVER.BASE_LR]")
    schedule = WarmupParamScheduler(
        LinearParamScheduler(1.0, end_value), solver.WARMUP_FACTOR,
        min(solver.WARMUP_ITERS / solver.MAX_ITER, 1.0), solver.WARMUP_METHOD, solver.RESCALE_INTERVAL,
    )
    return LRMultiplier(optimizer, multiplier=schedule, max_iter=solver.MAX_ITER)
