"""Linear probes: multinomial logistic regression over class names, in torch.

Features are standardised with the fit set's mean and standard deviation; the loss is the mean
cross-entropy plus (l2 / 2) * ||W||^2 (bias not decayed), minimised full-batch by L-BFGS from zero
weights. The problem is strictly convex, so the result does not depend on a random state: the same
inputs give the same probe.
"""
import logging
from dataclasses import dataclass
from typing import Dict, List, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

logger = logging.getLogger(__name__)


@dataclass
class LinearProbe:
    """A fitted probe over `classes`: mean, std (D,), weight (D, num_classes), bias (num_classes,)."""

    classes: List[str]
    mean: Tensor
    std: Tensor
    weight: Tensor
    bias: Tensor

    def logits(self, features: Tensor) -> Tensor:
        """(N, D) -> (N, num_classes)."""
        return ((features.double() - self.mean) / self.std) @ self.weight + self.bias

    def predict(self, features: Tensor) -> List[str]:
        """(N, D) -> N class names."""
        return [self.classes[int(i)] for i in self.logits(features).argmax(-1)]


def standardisation(x: Tensor) -> tuple:
    """(N, D) float64 -> mean, std (D,). A feature that varies only at float32 rounding level
    (std below 1e-5 of its magnitude, e.g. a dead channel) gets std = inf: it reads as 0, so the
    probe cannot fit rounding noise."""
    mean = x.mean(0)
    std = x.std(0, unbiased=False)
    constant = std <= 1e-5 * mean.abs().clamp(min=1e-3)
    return mean, std.masked_fill(constant, float("inf"))


def fit_linear_probe(features: Tensor, names: Sequence[str], l2: float = 1e-2, max_iter: int = 100) -> LinearProbe:
    """Fit a softmax classifier to (N, D) features labelled with N class names (see the module
    docstring); classes are the sorted distinct names."""
    classes = sorted(set(names))
    x = features.double()
    mean, std = standardisation(x)
    x = (x - mean) / std
    y = torch.tensor([classes.index(n) for n in names])
    weight = torch.zeros(x.shape[1], len(classes), dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(len(classes), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter, history_size=20,
                                  line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ weight + bias, y) + 0.5 * l2 * weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return LinearProbe(classes, mean, std, weight.detach(), bias.detach())


def accuracy(predicted: Sequence[str], names: Sequence[str]) -> float:
    """% of positions where the predicted name is the true one (0 for no positions)."""
    return 100.0 * sum(p == n for p, n in zip(predicted, names)) / max(len(names), 1)


def probe_accuracy(fit_features: Tensor, fit_names: Sequence[str], eval_features: Tensor,
                   eval_names: Sequence[str], l2: float = 1e-2, max_iter: int = 100) -> Dict[str, float]:
    """Fit on (N, D) features, score on (M, D): {"fit", "eval"} accuracy in %, the number of rows
    used ("fit_targets", "eval_targets"; rows with NaN are left out) and the feature width "dim".
    Evaluation targets of classes absent from the fit set count as wrong."""
    fit_rows = torch.isfinite(fit_features).all(1)
    eval_rows = torch.isfinite(eval_features).all(1)
    fit_names = [n for n, keep in zip(fit_names, fit_rows.tolist()) if keep]
    eval_names = [n for n, keep in zip(eval_names, eval_rows.tolist()) if keep]
    if not fit_names:
        return {"fit": 0.0, "eval": 0.0, "fit_targets": 0, "eval_targets": len(eval_names),
                "dim": int(fit_features.shape[1])}
    probe = fit_linear_probe(fit_features[fit_rows], fit_names, l2, max_iter)
    return {"fit": accuracy(probe.predict(fit_features[fit_rows]), fit_names),
            "eval": accuracy(probe.predict(eval_features[eval_rows]), eval_names),
            "fit_targets": len(fit_names), "eval_targets": len(eval_names), "dim": int(fit_features.shape[1])}
