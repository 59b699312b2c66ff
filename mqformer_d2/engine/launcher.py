"""What train_net.py runs: `main(args)` in each process, started by detectron2's `launch`."""
import os
from contextlib import ExitStack

import torch
import torch.distributed as dist
from detectron2.engine import launch
from detectron2.utils import comm

from ..registration import import_registration_modules
from .dataset_checks import check_datasets
from .defaults import build_config, setup
from .trainer import MQFormerTrainer


def check_process_group(cfg) -> None:
    """A CPU model cannot train over NCCL, which detectron2's launch picks whenever GPUs exist."""
    if comm.get_world_size() > 1 and cfg.MODEL.DEVICE == "cpu" and dist.get_backend() == "nccl":
        raise RuntimeError("MODEL.DEVICE is cpu but the processes communicate over NCCL because this "
                           "machine has GPUs: pass --cpu to train on CPU over gloo")


def main(args):
    """Train (resuming from OUTPUT_DIR's last checkpoint with --resume), or evaluate with
    --eval-only (MODEL.WEIGHTS, or with --resume the last checkpoint of OUTPUT_DIR). Returns the
    evaluation results (None when DATASETS.TEST is empty). A training run holds OUTPUT_DIR's
    lock until it returns or fails."""
    import_registration_modules(getattr(args, "register_module", None))
    with ExitStack() as resources:
        cfg = setup(args, resources)
        check_process_group(cfg)
        share_cpu_threads(cfg)
        check_datasets(cfg)
        if args.eval_only:
            model = MQFormerTrainer.build_model(cfg)
            MQFormerTrainer.load_weights_for_evaluation(cfg, model)
            return MQFormerTrainer.test(cfg, model)
        trainer = MQFormerTrainer(cfg)
        trainer.resume_or_load(resume=args.resume)
        return trainer.train()


def share_cpu_threads(cfg) -> int:
    """In each of several CPU processes on one machine, limit torch to its share of the cores
    (cores / processes): each would otherwise start a thread per core, and N processes fighting
    over the same cores run several times slower than one. A thread count set with OMP_NUM_THREADS
    is kept. Returns the threads torch uses."""
    processes = comm.get_local_size()
    if cfg.MODEL.DEVICE == "cpu" and processes > 1 and not os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // processes))
    return torch.get_num_threads()


def launch_main(args) -> None:
    """Run `main(args)` in args.num_gpus processes per machine (one in-process when the world
    size is 1); with --cpu the processes are CPU ones and talk over gloo. The registration
    modules are imported and the config is checked (e.g. MODEL.DEVICE cuda without CUDA) once,
    here, before any process is started."""
    import_registration_modules(getattr(args, "register_module", None))
    build_config(args.config_file, args.opts, cpu=getattr(args, "cpu", False))
    if getattr(args, "cpu", False):
        # Spawned workers then see no GPU, so detectron2's launch uses gloo and no CUDA device.
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(args,))
