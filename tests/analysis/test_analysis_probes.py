"""mqformer_d2.analysis.probes: the linear probe fits what is linearly there and nothing else."""
import torch

from mqformer_d2.analysis import accuracy, fit_linear_probe, probe_accuracy

torch.set_num_threads(1)
NAMES = ["circle", "cross", "square", "star"]


def clusters(count: int, dim: int = 20, seed: int = 0):
    """count samples of 4 well-separated Gaussian clusters in `dim` dims: (count, dim), names."""
    generator = torch.Generator().manual_seed(seed)
    centres = 3.0 * torch.eye(len(NAMES), dim)
    labels = torch.arange(count) % len(NAMES)
    features = centres[labels] + 0.5 * torch.randn(count, dim, generator=generator)
    return features, [NAMES[int(i)] for i in labels]


def test_probe_separates_a_separable_problem():
    fit_x, fit_names = clusters(200, seed=0)
    eval_x, eval_names = clusters(200, seed=1)
    result = probe_accuracy(fit_x, fit_names, eval_x, eval_names)
    assert result["fit"] == 100.0 and result["eval"] >= 99.0
    assert result["fit_targets"] == 200 and result["eval_targets"] == 200 and result["dim"] == 20


def test_probe_scores_chance_on_shuffled_labels():
    fit_x, fit_names = clusters(400, dim=50, seed=0)
    eval_x, eval_names = clusters(400, dim=50, seed=1)
    generator = torch.Generator().manual_seed(2)
    shuffled_fit = [fit_names[int(i)] for i in torch.randperm(400, generator=generator)]
    shuffled_eval = [eval_names[int(i)] for i in torch.randperm(400, generator=generator)]
    result = probe_accuracy(fit_x, shuffled_fit, eval_x, shuffled_eval)
    assert 15.0 <= result["eval"] <= 35.0  # chance is 25%
    assert result["fit"] > result["eval"] + 10.0  # it memorises noise on the fit set, which does not carry over


def test_probe_is_deterministic_and_counts_unseen_classes_and_nan_rows():
    fit_x, fit_names = clusters(40)
    first, second = fit_linear_probe(fit_x, fit_names), fit_linear_probe(fit_x, fit_names)
    assert torch.equal(first.weight, second.weight) and first.classes == NAMES
    eval_x = torch.stack([fit_x[0], fit_x[1], torch.full((20,), float("nan"))])
    result = probe_accuracy(fit_x, fit_names, eval_x, [fit_names[0], "hexagon", fit_names[2]])
    assert result["eval_targets"] == 2  # the NaN row is left out
    assert result["eval"] == 50.0  # "hexagon" is not a class of the fit set: wrong


def test_accuracy_in_percent():
    assert accuracy(["a", "b", "c"], ["a", "b", "x"]) == 200.0 / 3
    assert accuracy([], []) == 0.0
