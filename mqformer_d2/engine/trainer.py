"""`MQFormerTrainer`: detectron2's DefaultTrainer with MQ-Former's data, optimizer and evaluators.

Differences from DefaultTrainer:
- training data: every dataset of DATASETS.TRAIN through `build_unified_train_loader`, sampled with
  DATASETS.TRAIN_SAMPLING_RATIOS, each image mapped by `UnifiedDatasetMapper(cfg, True)`;
- test data: `UnifiedDatasetMapper(cfg, False)`; evaluators from `mqformer_d2.evaluation.build_evaluator`,
  chosen by each test dataset's metadata `evaluator_type`;
- optimizer: `engine.optimizer.build_optimizer` (AdamW, backbone LR multiplier, no weight decay on
  norms and embeddings, full-model gradient clipping); learning-rate schedule:
  `engine.optimizer.build_lr_scheduler` (detectron2's, plus "WarmupLinearLR");
- DDP also on CPU (gloo), mixed precision in SOLVER.AMP.PRECISION, and `MQFormerCheckpointer`
  (loads bare backbone weights by name suffix).
"""
import logging
import os
import weakref
from typing import Optional

import torch
from detectron2.data import build_detection_test_loader
from detectron2.engine import AMPTrainer, DefaultTrainer, SimpleTrainer, create_ddp_model
from detectron2.engine.train_loop import TrainerBase
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from ..checkpoint import MQFormerCheckpointer
from ..data import UnifiedDatasetMapper, build_unified_train_loader, load_tagged_dataset_dicts
from ..evaluation import build_evaluator, summarize_seginw_suites
from .defaults import check_training_config, warn_about_from_scratch_recipe
from .optimizer import build_lr_scheduler, build_optimizer
from .resume import resume_checkpoint

_AMP_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def warn_about_random_frozen_text_tower(model: torch.nn.Module) -> Optional[str]:
    """Log (and return) the text encoder's warning about a frozen tower without weights, if any."""
    model = getattr(model, "module", model)
    check = getattr(getattr(model, "text_encoder", None), "random_frozen_tower_warning", None)
    message = check() if check is not None else None
    if message:
        logging.getLogger(__name__).warning(message)
    return message


def _ddp_device_kwargs(model: torch.nn.Module) -> dict:
    """DistributedDataParallel's device arguments: the local GPU, or none for a CPU model (gloo)."""
    device = next(model.parameters()).device
    return {"device_ids": [comm.get_local_rank()]} if device.type == "cuda" else {"device_ids": None}


class MQFormerTrainer(DefaultTrainer):
    """DefaultTrainer for MQ-Former (see the module docstring). Used by train_net.py as

        trainer = MQFormerTrainer(cfg); trainer.resume_or_load(resume=args.resume); trainer.train()
    """

    def __init__(self, cfg):
        """DefaultTrainer.__init__ step by step, in its order (tests/engine/test_trainer_init.py
        compares the two), since its steps cannot be reached one by one. Differences: the config
        checks, the DDP device arguments (a CPU model takes none: gloo), the AMP precision and the
        checkpointer."""
        check_training_config(cfg)
        TrainerBase.__init__(self)
        if not logging.getLogger("detectron2").isEnabledFor(logging.INFO):
            setup_logger()
        cfg = self.auto_scale_workers(cfg, comm.get_world_size())
        warn_about_from_scratch_recipe(cfg)
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg)
        model = create_ddp_model(model, broadcast_buffers=False, **_ddp_device_kwargs(model))
        amp = {"precision": _AMP_DTYPES[cfg.SOLVER.AMP.PRECISION]} if cfg.SOLVER.AMP.ENABLED else {}
        self._trainer = (AMPTrainer if amp else SimpleTrainer)(model, data_loader, optimizer, **amp)
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = MQFormerCheckpointer(model, cfg.OUTPUT_DIR, trainer=weakref.proxy(self))
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self.register_hooks(self.build_hooks())

    def resume_or_load(self, resume: bool = True) -> None:
        """DefaultTrainer.resume_or_load, except that a truncated or missing last checkpoint is
        skipped (with a warning naming it) for the newest intact one of OUTPUT_DIR; then a loud
        warning if the text tower would train frozen at random."""
        path = resume_checkpoint(self.cfg.OUTPUT_DIR) if resume else None
        if path is None:
            self.checkpointer.load(self.cfg.MODEL.WEIGHTS, checkpointables=[])
        else:
            self.checkpointer.load(path)
            # The checkpoint holds the iteration that just finished.
            self.start_iter = self.iter + 1
        warn_about_random_frozen_text_tower(self.model)

    def train(self) -> Optional[dict]:
        """Train from `start_iter` to SOLVER.MAX_ITER; return the results of the last evaluation
        (the one after the final iteration), or None when DATASETS.TEST is empty."""
        super().train()
        return getattr(self, "_last_eval_results", None) if len(self.cfg.DATASETS.TEST) else None

    def after_train(self) -> None:
        """DefaultTrainer's, except after a failed iteration (`iter` short of `max_iter`): a hook
        failing then too, e.g. the events writer in an OUTPUT_DIR that the failed checkpoint save
        could not write either, is logged, so that the error that stopped training is the one
        raised."""
        if self.iter >= self.max_iter:
            super().after_train()
            return
        self.storage.iter = self.iter
        for hook in self._hooks:
            try:
                hook.after_train()
            except Exception:
                logging.getLogger(__name__).exception(
                    "training had failed (the error raised); closing %s failed too:", type(hook).__name__)

    @classmethod
    def test(cls, cfg, model, evaluators=None):
        """DefaultTrainer.test, plus (several test datasets) each SeginW-format suite's mean and
        median AP under the suite's name, e.g. results["seginw"]["mean_segm_AP"]."""
        results = super().test(cfg, model, evaluators)
        if len(cfg.DATASETS.TEST) > 1 and comm.is_main_process():
            results.update(summarize_seginw_suites(results))
        return results

    @classmethod
    def build_optimizer(cls, cfg, model):
        return build_optimizer(cfg, model)

    @classmethod
    def build_lr_scheduler(cls, cfg, optimizer):
        return build_lr_scheduler(cfg, optimizer)

    @classmethod
    def build_train_loader(cls, cfg):
        return build_unified_train_loader(cfg, UnifiedDatasetMapper(cfg, True))

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        dataset_dicts, _ = load_tagged_dataset_dicts([dataset_name])
        return build_detection_test_loader(dataset_dicts, mapper=UnifiedDatasetMapper(cfg, False),
                                           num_workers=cfg.DATALOADER.NUM_WORKERS)

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        """The evaluator of `dataset_name`'s metadata `evaluator_type`; files go to
        OUTPUT_DIR/inference/<dataset_name> unless `output_folder` is given."""
        if output_folder is None:
            output_folder = os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        return build_evaluator(cfg, dataset_name, output_folder=output_folder)

    @classmethod
    def load_weights_for_evaluation(cls, cfg, model) -> None:
        """Load MODEL.WEIGHTS, the weights to evaluate (with --eval-only --resume, `setup` has set
        it to the last checkpoint of the OUTPUT_DIR named on the command line)."""
        MQFormerCheckpointer(model, save_dir=cfg.OUTPUT_DIR).load(cfg.MODEL.WEIGHTS, checkpointables=[])
