"""Config creation and the command line shared by train_net.py and demo/demo.py."""
import argparse
import logging
import os
from contextlib import ExitStack
from typing import List, Optional, Sequence

import torch
from detectron2.config import CfgNode, get_cfg
from detectron2.engine import default_argument_parser, default_setup
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from .. import config as model_config
from ..registration import add_register_module_argument
from .resume import keep_run_config, resume_checkpoint, run_checkpoints
from .run_dirs import TrainingDirLock, claim_timestamped_dir

_AMP_PRECISIONS = ("float16", "bfloat16")
# Training-folder locks of `setup` calls without an ExitStack: held until the process ends.
_PROCESS_LOCKS: List[TrainingDirLock] = []


def get_mqformer_cfg() -> CfgNode:
    """Detectron2's default config plus every MQ-Former key (model, data, solver, evaluation)."""
    return model_config.add_mqformer_config(get_cfg())


def build_config(config_file: str, opts: Sequence[str] = (), cpu: bool = False) -> CfgNode:
    """The frozen config of `config_file` ("" = defaults) with `opts` ("KEY VALUE" pairs) merged,
    MODEL.DEVICE "cpu" when `cpu`, and its device / mixed-precision settings checked."""
    cfg = get_mqformer_cfg()
    if config_file:
        if not os.path.isfile(config_file):
            raise FileNotFoundError(f"--config-file: {config_file} does not exist")
        cfg.merge_from_file(config_file)
    cfg.merge_from_list(list(opts or []))
    if cpu:
        cfg.MODEL.DEVICE = "cpu"
    check_device_settings(cfg)
    cfg.freeze()
    return cfg


def check_device_settings(cfg: CfgNode) -> None:
    """Clear errors for a CUDA MODEL.DEVICE without CUDA and an unknown mixed precision. Mixed
    precision on CPU is only an error for training (`check_training_precision`): a config made
    for GPU training still builds for CPU inference."""
    device = torch.device(cfg.MODEL.DEVICE)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"MODEL.DEVICE is {cfg.MODEL.DEVICE!r} but CUDA is not available: "
                           "add `MODEL.DEVICE cpu` (or --cpu) to run on CPU")
    if cfg.SOLVER.AMP.PRECISION not in _AMP_PRECISIONS:
        raise ValueError(f"SOLVER.AMP.PRECISION: {cfg.SOLVER.AMP.PRECISION!r} is not one of {_AMP_PRECISIONS}")


def check_training_precision(cfg: CfgNode) -> None:
    """Training in mixed precision needs CUDA (detectron2's AMPTrainer is CUDA-only)."""
    if cfg.SOLVER.AMP.ENABLED and torch.device(cfg.MODEL.DEVICE).type != "cuda":
        raise ValueError("SOLVER.AMP.ENABLED needs MODEL.DEVICE cuda for training (detectron2's AMPTrainer is "
                         f"CUDA-only); MODEL.DEVICE is {cfg.MODEL.DEVICE!r}: add `SOLVER.AMP.ENABLED False`")


def from_scratch_recipe_problems(cfg: CfgNode) -> List[str]:
    """What in `cfg` is meant for a pretrained backbone although the backbone starts from random
    weights (MODEL.WEIGHTS empty): a learning-rate multiplier below 1, or FrozenBN (whose
    identity statistics leave a random ResNet unnormalised). One line per key; [] when fine."""
    if cfg.MODEL.WEIGHTS:
        return []
    problems = []
    if cfg.SOLVER.BACKBONE_MULTIPLIER < 1.0:
        problems.append(f"SOLVER.BACKBONE_MULTIPLIER is {cfg.SOLVER.BACKBONE_MULTIPLIER}: the random "
                        "backbone learns slower than the rest (set 1.0)")
    if "resnet" in cfg.MODEL.BACKBONE.NAME and cfg.MODEL.RESNETS.NORM == "FrozenBN":
        problems.append("MODEL.RESNETS.NORM is FrozenBN: frozen identity statistics on random "
                        'weights (set "BN", or "SyncBN" on several GPUs)')
    return problems


def warn_about_from_scratch_recipe(cfg: CfgNode) -> None:
    """Log a warning naming each key of `from_scratch_recipe_problems` (training only)."""
    problems = from_scratch_recipe_problems(cfg)
    if problems:
        logging.getLogger(__name__).warning(
            "MODEL.WEIGHTS is empty, so the backbone trains from random weights, but the config keeps "
            "settings made for a pretrained backbone:\n  - %s", "\n  - ".join(problems))


def argument_parser() -> argparse.ArgumentParser:
    """detectron2's `default_argument_parser` plus --cpu and --register-module."""
    parser = add_register_module_argument(default_argument_parser())
    parser.add_argument(
        "--cpu", action="store_true",
        help="run on CPU (sets MODEL.DEVICE cpu). With --num-gpus N, N CPU processes per machine "
             "train with DDP over gloo; the GPUs of the machine, if any, are hidden from them.",
    )
    return parser


def check_output_dir(cfg: CfgNode, args) -> None:
    """Refuse to start a new training run over the checkpoints of another in OUTPUT_DIR (its
    last_checkpoint, or any model_*.pth)."""
    if args.eval_only or args.resume:
        return
    found = run_checkpoints(cfg.OUTPUT_DIR)
    if found:
        raise FileExistsError(
            f"OUTPUT_DIR {cfg.OUTPUT_DIR} already holds the checkpoints of a training run "
            f"({', '.join(found[:3])}); pass --resume to continue it, or choose another OUTPUT_DIR"
        )


def check_training_config(cfg: CfgNode) -> None:
    """Clear errors, naming the key, for settings that cannot train: mixed precision without
    CUDA (`check_training_precision`), no training dataset, no iteration. An empty DATASETS.TRAIN
    is reported first: it is what a config made for evaluation or prediction lacks."""
    if not len(cfg.DATASETS.TRAIN):
        raise ValueError("DATASETS.TRAIN is empty: name the datasets to train on (or pass --eval-only "
                         "to evaluate MODEL.WEIGHTS on DATASETS.TEST)")
    check_training_precision(cfg)
    if cfg.SOLVER.MAX_ITER <= 0:
        raise ValueError(f"SOLVER.MAX_ITER is {cfg.SOLVER.MAX_ITER}: training needs at least one iteration")


def evaluation_weights(cfg: CfgNode, resume: bool) -> CfgNode:
    """--eval-only: `cfg` with MODEL.WEIGHTS set to what will be evaluated. With `resume`, the
    newest intact checkpoint of OUTPUT_DIR, looked up in the folder the user named (before
    `separate_eval_output_dir` moves the output); else, or when it holds none, MODEL.WEIGHTS.
    Without either, a ValueError: an evaluation of random weights is never what was meant."""
    checkpoint = resume_checkpoint(cfg.OUTPUT_DIR) if resume else None
    logger = logging.getLogger(__name__)
    if checkpoint is None and not cfg.MODEL.WEIGHTS:
        where = (f" and OUTPUT_DIR {cfg.OUTPUT_DIR} holds no checkpoint (last_checkpoint, model_*.pth) "
                 "to resume") if resume else ""
        raise ValueError(f"--eval-only: no weights to evaluate: MODEL.WEIGHTS is empty{where}; set "
                         "MODEL.WEIGHTS to a checkpoint file, or pass --resume with the OUTPUT_DIR of a "
                         "training run")
    if checkpoint is None:
        if resume:
            logger.warning("--eval-only --resume: OUTPUT_DIR %s holds no checkpoint; evaluating MODEL.WEIGHTS %s",
                           cfg.OUTPUT_DIR, cfg.MODEL.WEIGHTS)
        return cfg
    logger.info("--eval-only --resume: evaluating %s", checkpoint)
    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.WEIGHTS = checkpoint
    cfg.freeze()
    return cfg


def separate_eval_output_dir(cfg: CfgNode) -> CfgNode:
    """For --eval-only: a fresh `eval_<time>[_<n>]` sub-folder when OUTPUT_DIR already holds files
    (e.g. the training run being evaluated), so its config.yaml and inference/ results are kept.
    The main process claims it atomically (two evaluations started in the same second get two
    folders) and tells the other processes its name."""
    output_dir = None
    if comm.is_main_process() and os.path.isdir(cfg.OUTPUT_DIR) and os.listdir(cfg.OUTPUT_DIR):
        output_dir = claim_timestamped_dir(cfg.OUTPUT_DIR, "eval_")
        logging.getLogger(__name__).info("--eval-only: writing to %s (OUTPUT_DIR is not empty)", output_dir)
    output_dir = comm.all_gather(output_dir)[0] if comm.get_world_size() > 1 else output_dir
    if output_dir is None:
        return cfg
    cfg = cfg.clone()
    cfg.defrost()
    cfg.OUTPUT_DIR = output_dir
    cfg.freeze()
    return cfg


def lock_training_dir(cfg: CfgNode, resources: Optional[ExitStack]) -> None:
    """The main process takes `TrainingDirLock` on OUTPUT_DIR, held until `resources` closes
    (until the process ends when None); every process raises when it is refused."""
    error = None
    if comm.is_main_process():
        try:
            lock = TrainingDirLock(cfg.OUTPUT_DIR).acquire()
            if resources is not None:
                resources.callback(lock.release)
            else:
                _PROCESS_LOCKS.append(lock)
        except FileExistsError as e:
            error = e
    if comm.get_world_size() > 1:
        refused = comm.all_gather(str(error) if error else None)[0]
        if refused and error is None:
            raise FileExistsError(refused)
    if error is not None:
        raise error


def setup(args, resources: Optional[ExitStack] = None) -> CfgNode:
    """Config from the command line, checked, then detectron2's `default_setup` (logging, a copy
    of the config in OUTPUT_DIR, seeds). Never writes over another run's files; with --resume the
    run's config.yaml is kept and this command's config goes to config.resume-<n>.yaml. A
    training run locks OUTPUT_DIR (`lock_training_dir`) until `resources` closes; --eval-only
    resolves its weights (`evaluation_weights`) before writing to a fresh sub-folder."""
    cfg = build_config(args.config_file, args.opts, cpu=getattr(args, "cpu", False))
    if args.eval_only:
        cfg = separate_eval_output_dir(evaluation_weights(cfg, args.resume))
    else:
        check_training_config(cfg)
        check_output_dir(cfg, args)
        lock_training_dir(cfg, resources)
    if args.resume and not args.eval_only and comm.is_main_process():
        keep_run_config(cfg.OUTPUT_DIR, lambda: default_setup(cfg, args))  # config.resume-<n>.yaml
    else:
        default_setup(cfg, args)
    # default_setup configures detectron2's and fvcore's loggers; ours would otherwise be silent.
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="mqformer_d2", abbrev_name="mq")
    return cfg
