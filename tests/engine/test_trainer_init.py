"""MQFormerTrainer.__init__ copies DefaultTrainer.__init__ step by step (its steps cannot be reached
one by one): the two must build the same things in the same order, so that a change of detectron2's
order shows up here."""
import detectron2.engine.defaults as detectron2_defaults
import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.engine import DefaultTrainer
from helpers import tiny_config

import mqformer_d2.engine.trainer as mqformer_trainer
from mqformer_d2.checkpoint import MQFormerCheckpointer
from mqformer_d2.engine import MQFormerTrainer

BUILDERS = ("build_model", "build_optimizer", "build_train_loader", "build_lr_scheduler", "build_hooks")


def stub(name, trace):
    """A builder that records its call and returns a tiny stand-in (nothing is built from cfg)."""
    def build(cls_or_self, *args):
        trace.append(name)
        if name == "build_model":
            return torch.nn.Linear(2, 2)
        if name == "build_optimizer":
            return torch.optim.SGD(args[1].parameters(), lr=0.1)
        if name == "build_lr_scheduler":
            return torch.optim.lr_scheduler.StepLR(args[1], 1)
        return []  # the data loader, the hooks
    return build if name == "build_hooks" else classmethod(build)


def traced(trainer_class, trace):
    """`trainer_class` with stub builders, recording each attribute it sets (with the value's type)."""
    def record_setattr(self, name, value):
        trace.append(f"{name} = {type(value).__name__}")
        object.__setattr__(self, name, value)

    members = {name: stub(name, trace) for name in BUILDERS}
    return type(f"Traced{trainer_class.__name__}", (trainer_class,), dict(members, __setattr__=record_setattr))


def construction_trace(trainer_class, monkeypatch, tmp_path):
    trace = []

    def record(name, function):
        def recorded(*args, **kwargs):
            trace.append(name)
            return function(*args, **kwargs)
        return recorded

    with monkeypatch.context() as patch:
        patch.setattr(DefaultTrainer, "auto_scale_workers",
                      staticmethod(record("auto_scale_workers", DefaultTrainer.auto_scale_workers)))
        for module in (detectron2_defaults, mqformer_trainer):
            patch.setattr(module, "create_ddp_model", record("create_ddp_model", module.create_ddp_model))
        cfg = tiny_config("DATASETS.TRAIN", '("unused",)', "OUTPUT_DIR", str(tmp_path))  # the loader is a stub
        return traced(trainer_class, trace)(cfg), trace


def test_the_trainer_builds_what_detectron2s_builds_in_its_order(monkeypatch, tmp_path):
    ours, our_trace = construction_trace(MQFormerTrainer, monkeypatch, tmp_path / "ours")
    theirs, their_trace = construction_trace(DefaultTrainer, monkeypatch, tmp_path / "theirs")
    assert "build_model" in their_trace and "create_ddp_model" in their_trace  # the stubs and records ran
    # The one intended difference in what is built: the checkpointer's class.
    assert our_trace == [s.replace("DetectionCheckpointer", "MQFormerCheckpointer") for s in their_trace]
    assert isinstance(ours.checkpointer, MQFormerCheckpointer) and isinstance(theirs.checkpointer, DetectionCheckpointer)
    assert ours.checkpointer.save_dir == str(tmp_path / "ours") and ours.max_iter == theirs.max_iter


@pytest.mark.parametrize("key, value", [("DATASETS.TRAIN", "()"), ("SOLVER.MAX_ITER", 0)])
def test_the_config_is_checked_before_anything_is_built(tmp_path, key, value):
    trace = []
    cfg = tiny_config("DATASETS.TRAIN", '("unused",)', key, value, "OUTPUT_DIR", str(tmp_path))
    with pytest.raises(ValueError, match=key):
        traced(MQFormerTrainer, trace)(cfg)
    assert not [step for step in trace if step.startswith("build_")]
