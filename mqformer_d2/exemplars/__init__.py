"""Exemplar prompts: segment what example boxes (or masks) on images show, beside text prompts.

- `regions.pool_regions`: RoIAlign read-outs of MQ-Former's encoder levels and mask features under
  each exemplar (K, M, C);
- `encoder.ExemplarEncoder` (the model's `exemplar_encoder`, MODEL.MQFORMER.EXEMPLARS): a small head
  per exemplar, then `pooling` of the K exemplars (mean, max, MIVC attention / gated attention);
- `inputs.Exemplar`: one checked exemplar; `prompting`: embeddings of exemplar prompts (chunked)
  and inference with text, exemplar and negative-exemplar prompts in one call;
- `sampling`, `cache`, `training`, `evaluation`: the exemplar stage and its evaluation
  (`mqformer_d2.experiments.exemplars`, `make exemplars`).
"""
from .encoder import ExemplarEncoder, build_exemplar_encoder
from .pooling import POOLINGS, AttentionPooling, MaxPooling, MeanPooling, build_pooling

__all__ = ["POOLINGS", "AttentionPooling", "ExemplarEncoder", "MaxPooling", "MeanPooling",
           "build_exemplar_encoder", "build_pooling"]
