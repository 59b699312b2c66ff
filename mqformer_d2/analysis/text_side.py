"""The text side of the class head: how distinct the class-name embeddings are, and the
classifier's logit scale and bias (logit = scale * cos(query, text) + bias)."""
from typing import Dict, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def text_cosine_matrix(model, names: Sequence[str]) -> Tensor:
    """(T, T) cosine similarity between the class head's embeddings of the T names (as training
    embeds them: no prompt templates)."""
    with torch.no_grad():
        texts = F.normalize(model.text_encoder(list(names), use_templates=False).float(), dim=-1)
    return texts @ texts.T


def mean_off_diagonal(matrix: Tensor) -> float:
    """Mean of the (T, T) matrix's entries off the diagonal (T >= 2)."""
    off_diagonal = ~torch.eye(len(matrix), dtype=torch.bool, device=matrix.device)
    return float(matrix[off_diagonal].mean())


def classifier_calibration(model) -> Dict[str, float]:
    """The class head's logit scale and bias (at initialisation 1/0.07 = 14.3 and -4.6, the 0.01
    focal prior). "logit_scale" is the scale the forward uses (after its clamp), read off the
    classifier itself: the logit of a query for the text equal to its own projection (cosine 1)
    minus the bias; "logit_scale_raw" is exp of the learned log scale."""
    classifier = model.decoder.heads.classifier
    with torch.no_grad():
        query = torch.ones(1, 1, classifier.query_projection.in_features, device=classifier.bias.device)
        own_text = classifier.query_projection(query)[0]  # (1, C)
        logit = float(classifier(query, own_text))
    bias = float(classifier.bias.detach())
    return {"logit_scale": logit - bias, "logit_scale_raw": float(classifier.log_scale.detach().exp()),
            "logit_bias": bias}


def text_side_report(model, names: Sequence[str]) -> Dict:
    """{"names", "cosine" (T x T list), "mean_cosine", "max_cosine" (off the diagonal), logit scale, bias}."""
    matrix = text_cosine_matrix(model, names)
    off_diagonal = matrix[~torch.eye(len(names), dtype=torch.bool)]
    return dict(classifier_calibration(model), names=list(names),
                cosine=[[round(float(v), 4) for v in row] for row in matrix],
                mean_cosine=mean_off_diagonal(matrix), max_cosine=float(off_diagonal.max()))
