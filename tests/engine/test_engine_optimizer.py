"""The optimizer: parameter groups (backbone LR, no decay on norms / embeddings), clipping, checks."""
import copy

import pytest
import torch
from detectron2.modeling import build_model
from helpers import TINY_CONFIG, tiny_config
from torch import nn

from mqformer_d2.engine import MQFormerTrainer, build_config, build_optimizer, build_param_groups

torch.set_num_threads(2)
BASE_LR, WEIGHT_DECAY, MULTIPLIER = 1e-4, 0.05, 0.1


def config(*options):
    return tiny_config("SOLVER.BASE_LR", BASE_LR, "SOLVER.WEIGHT_DECAY", WEIGHT_DECAY,
                       "SOLVER.BACKBONE_MULTIPLIER", MULTIPLIER, *options)


@pytest.fixture(scope="module")
def model():
    return build_model(config("MODEL.MQFORMER.TEXT_ENCODER.FREEZE", True))  # a frozen tower: its branch too


def hyperparameters_by_name(model, groups):
    by_id = {id(p): (group["lr"], group["weight_decay"]) for group in groups for p in group["params"]}
    return {name: by_id.get(id(p)) for name, p in model.named_parameters()}


def test_every_trainable_parameter_is_in_exactly_one_group(model):
    groups = build_param_groups(config(), model)
    grouped = [id(p) for group in groups for p in group["params"]]
    trainable = [id(p) for p in model.parameters() if p.requires_grad]
    assert len(grouped) == len(set(grouped)) and set(grouped) == set(trainable)


def test_backbone_lr_multiplier_and_weight_decay_exemptions(model):
    hyper = hyperparameters_by_name(model, build_param_groups(config(), model))
    modules = dict(model.named_modules())
    for name, values in hyper.items():
        if values is None:  # frozen (the CLIP text tower)
            assert name.startswith("text_encoder.clip.")
            continue
        lr, weight_decay = values
        assert lr == pytest.approx(BASE_LR * MULTIPLIER if name.startswith("backbone.") else BASE_LR), name
        owner = modules[name.rpartition(".")[0]]
        exempt = isinstance(owner, (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm, nn.Embedding)) or name.endswith("level_embed")
        assert weight_decay == (0.0 if exempt else WEIGHT_DECAY), name
    assert hyper["decoder.learnable_content.weight"][1] == 0.0
    assert hyper["pixel_decoder.level_embed"][1] == 0.0
    assert hyper["decoder.heads.mask_embed.layers.0.weight"][1] == WEIGHT_DECAY  # an MLP, not an embedding


def test_optimizer_types():
    small = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))
    assert isinstance(build_optimizer(config(), small), torch.optim.AdamW)
    sgd = build_optimizer(config("SOLVER.OPTIMIZER", "SGD", "SOLVER.MOMENTUM", 0.5), small)
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["momentum"] == 0.5
    with pytest.raises(ValueError, match="SOLVER.OPTIMIZER"):
        build_optimizer(config("SOLVER.OPTIMIZER", "LAMB"), small)
    with pytest.raises(ValueError, match="CLIP_TYPE"):
        build_optimizer(config("SOLVER.CLIP_GRADIENTS.ENABLED", True, "SOLVER.CLIP_GRADIENTS.CLIP_TYPE", "all"), small)


def test_cpu_parameters_get_the_multi_tensor_update_with_the_same_result():
    """foreach (chosen by torch only for CUDA) is asked for explicitly; it must not change the step."""
    torch.manual_seed(0)
    small = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))
    reference = copy.deepcopy(small)
    optimizer = build_optimizer(config(), small)
    assert optimizer.defaults["foreach"] is True
    plain = torch.optim.AdamW(reference.parameters(), lr=optimizer.defaults["lr"], weight_decay=0.0, foreach=False)
    for group in optimizer.param_groups:
        group["weight_decay"] = 0.0
    for model in (small, reference):
        for p in model.parameters():
            p.grad = torch.ones_like(p)
    optimizer.step()
    plain.step()
    for p, q in zip(small.parameters(), reference.parameters()):
        torch.testing.assert_close(p, q)


def gradient_norms_after_step(clip_type, max_norm=1.0):
    torch.manual_seed(0)
    small = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8))
    optimizer = build_optimizer(config("SOLVER.CLIP_GRADIENTS.ENABLED", True, "SOLVER.CLIP_GRADIENTS.CLIP_TYPE",
                                       clip_type, "SOLVER.CLIP_GRADIENTS.CLIP_VALUE", max_norm), small)
    for p in small.parameters():
        p.grad = torch.full_like(p, 10.0)
    optimizer.step()
    per_parameter = [float(p.grad.norm()) for p in small.parameters()]
    return per_parameter, float(torch.tensor(per_parameter).norm())


def test_full_model_gradient_clipping_clips_the_total_norm():
    per_parameter, total = gradient_norms_after_step("full_model")
    assert total == pytest.approx(1.0, rel=1e-4)
    # detectron2's per-parameter "norm" clipping bounds each parameter, not the total.
    per_parameter, total = gradient_norms_after_step("norm")
    assert max(per_parameter) == pytest.approx(1.0, rel=1e-4) and total > 1.5


def test_device_and_precision_settings_are_checked():
    # A config with mixed precision builds for CPU inference; training it on CPU is refused.
    amp_on_cpu = config("SOLVER.AMP.ENABLED", True, "DATASETS.TRAIN", "('mqformer_shapes_train',)")
    assert amp_on_cpu.MODEL.DEVICE == "cpu"
    with pytest.raises(ValueError, match="SOLVER.AMP.ENABLED"):
        MQFormerTrainer(amp_on_cpu)
    with pytest.raises(ValueError, match="SOLVER.AMP.PRECISION"):
        config("SOLVER.AMP.PRECISION", "float8")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="MODEL.DEVICE"):
            config("MODEL.DEVICE", "cuda")
    with pytest.raises(FileNotFoundError, match="no_such.yaml"):
        build_config("no_such.yaml")


def test_from_scratch_configs_train_the_backbone_at_full_rate_with_batch_norm():
    from mqformer_d2.engine.defaults import from_scratch_recipe_problems

    for config_file in (TINY_CONFIG, TINY_CONFIG.replace("mqformer_tiny_cpu.yaml", "shapes/mqformer_tiny_shapes.yaml")):
        cfg = build_config(config_file)
        assert cfg.SOLVER.BACKBONE_MULTIPLIER == 1.0 and cfg.MODEL.RESNETS.NORM == "BN", config_file
        assert from_scratch_recipe_problems(cfg) == []


def test_pretrained_backbone_recipe_on_random_weights_is_warned_about_by_key():
    import io
    import logging

    from mqformer_d2.engine.defaults import from_scratch_recipe_problems, warn_about_from_scratch_recipe

    cfg = build_config(TINY_CONFIG, ["SOLVER.BACKBONE_MULTIPLIER", 0.1, "MODEL.RESNETS.NORM", "FrozenBN"])
    problems = from_scratch_recipe_problems(cfg)
    assert len(problems) == 2
    assert "SOLVER.BACKBONE_MULTIPLIER" in problems[0] and "MODEL.RESNETS.NORM" in problems[1]
    # A handler of its own: training set-up elsewhere in the suite stops package loggers propagating.
    stream, logger = io.StringIO(), logging.getLogger("mqformer_d2.engine.defaults")
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    try:
        warn_about_from_scratch_recipe(cfg)
    finally:
        logger.removeHandler(handler)
    assert "SOLVER.BACKBONE_MULTIPLIER" in stream.getvalue() and "FrozenBN" in stream.getvalue()
    # With weights to start from, the pretrained recipe is right: nothing to say.
    pretrained = build_config(TINY_CONFIG, ["SOLVER.BACKBONE_MULTIPLIER", 0.1, "MODEL.WEIGHTS", "r18.pkl"])
    assert from_scratch_recipe_problems(pretrained) == []


def test_linear_schedule_decays_to_the_end_value_after_warm_up():
    from mqformer_d2.engine.optimizer import build_lr_scheduler

    cfg = config("SOLVER.LR_SCHEDULER_NAME", "WarmupLinearLR", "SOLVER.MAX_ITER", 100, "SOLVER.WARMUP_ITERS", 10,
                 "SOLVER.WARMUP_FACTOR", 0.1, "SOLVER.BASE_LR_END", 0.0)
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=BASE_LR)
    scheduler = build_lr_scheduler(cfg, optimizer)
    rates = []
    for _ in range(100):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] == pytest.approx(0.1 * BASE_LR)
    assert rates[50] == pytest.approx(0.5 * BASE_LR)  # past the warm-up: 1 - 50 / 100
    assert rates[99] == pytest.approx(0.01 * BASE_LR)
    assert all(a >= b for a, b in zip(rates[10:], rates[11:]))
    with pytest.raises(ValueError, match="BASE_LR_END"):
        build_lr_scheduler(config("SOLVER.LR_SCHEDULER_NAME", "WarmupLinearLR", "SOLVER.BASE_LR_END", 1.0), optimizer)


def test_detectron2_schedules_still_build():
    from detectron2.solver.lr_scheduler import LRMultiplier

    from mqformer_d2.engine.optimizer import build_lr_scheduler

    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=BASE_LR)
    assert isinstance(build_lr_scheduler(config("SOLVER.LR_SCHEDULER_NAME", "WarmupCosineLR"), optimizer), LRMultiplier)
    assert isinstance(MQFormerTrainer.build_lr_scheduler(config(), optimizer), LRMultiplier)
