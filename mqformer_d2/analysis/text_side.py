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
    focal prior): "logit_scale" as the logits use it (after its clamp), "logit_scale_raw" (exp of
    the learned log scale) and "logit_bias" (`PredictionHeads.class_calibration`)."""
    return {name: float(value) for name, value in model.decoder.heads.class_calibration().items()}


def text_side_report(model, names: Sequence[str]) -> Dict:
    """{"names", "cosine" (T x T list), "mean_cosine", "max_cosine" (off the diagonal), logit scale, bias}."""
    matrix = text_cosine_matrix(model, names)
    off_diagonal = matrix[~torch.eye(len(names), dtype=torch.bool)]
    return dict(classifier_calibration(model), names=list(names),
                cosine=[[round(float(v), 4) for v in row] for row in matrix],
                mean_cosine=mean_off_diagonal(matrix), max_cosine=float(off_diagonal.max()))
