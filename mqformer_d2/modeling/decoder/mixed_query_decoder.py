"""The mixed-query decoder of MQ-Former: learnable + conditional queries, fused in every layer."""
from typing import Dict, List, Optional

import torch
from detectron2.config import configurable
from torch import Tensor, nn

from mqformer_d2.layers import MLP, box_position_embedding, inverse_sigmoid

from ..pixel_decoder import PixelDecoderOutput
from ..text_batch import TextBatch
from .build import DECODER_REGISTRY
from .mixed_query_layer import MixedQueryDecoderLayer
from .prediction_heads import PredictionHeads
from .query_selection import ConditionalQuerySelector

LEARNABLE, CONDITIONAL = 0, 1


@DECODER_REGISTRY.register()
class MixedQueryDecoder(nn.Module):
    """N_l learnable + N_c conditional queries -> per-layer class / box / mask predictions.

    Query sequence: [denoising prefix (training only) | N_l learnable | N_c conditional].
    Learnable queries have a learned content embedding and a learned anchor box; conditional ones
    are the top N_c encoder proposals (detached content, mask-enhanced anchors). Each layer runs
    `MixedQueryDecoderLayer`, then refines every anchor (DINO): box = sigmoid(delta +
    logit(anchor)), and the next layer's anchor is that box, detached. The same
    `PredictionHeads.forward_prediction_heads` predicts at every layer.
    """

    @configurable
    def __init__(self, *, hidden_dim: int, num_learnable: int, num_conditional: int, num_layers: int,
                 num_heads: int, num_points: int, num_levels: int, dim_feedforward: int, dropout: float,
                 mask_enhanced_anchors: bool, initial_prediction: bool, box_readout_size: int = 0,
                 class_similarity: str = "cosine", class_logit_scale: float = 0.0,
                 denoising_content_projection: bool = False, selection_ranking: str = "best_text"):
        super().__init__()
        if num_learnable < 0 or num_conditional < 0 or num_learnable + num_conditional == 0:
            raise ValueError(
                "MODEL.MQFORMER.DECODER: NUM_LEARNABLE_QUERIES and NUM_CONDITIONAL_QUERIES must be "
                f">= 0 with a positive sum, got {num_learnable} and {num_conditional}"
            )
        self.num_learnable = num_learnable
        self.num_conditional = num_conditional
        self.initial_prediction = initial_prediction
        self.heads = PredictionHeads(hidden_dim, class_similarity, class_logit_scale)
        # Denoising content (a projected text embedding, norm ~1) mapped to the scale of the
        # normalised query content (norm ~sqrt(C)) before the first layer mixes them.
        self.denoising_content = nn.Sequential(
            nn.Linear(hidden_dim, hidden_dim), nn.LayerNorm(hidden_dim)
        ) if denoising_content_projection else None
        if num_learnable > 0:
            self.learnable_content = nn.Embedding(num_learnable, hidden_dim)
            self.learnable_anchors = nn.Embedding(num_learnable, 4)
            self._init_learnable_anchors()
        self.selector = ConditionalQuerySelector(
            dim=hidden_dim, num_queries=num_conditional, mask_enhanced_anchors=mask_enhanced_anchors,
            ranking=selection_ranking,
        ) if num_conditional > 0 else None
        # Query position = MLP of the sine embedding of its anchor box (conditional DETR / DINO).
        self.anchor_to_position = MLP(2 * hidden_dim, hidden_dim, hidden_dim, 2)
        self.layers = nn.ModuleList(
            MixedQueryDecoderLayer(
                dim=hidden_dim, num_heads=num_heads, num_levels=num_levels, num_points=num_points,
                dim_feedforward=dim_feedforward, dropout=dropout, num_learnable=num_learnable,
                num_conditional=num_conditional, box_readout_size=box_readout_size,
            )
            for _ in range(num_layers)
        )
        self.hidden_dim = hidden_dim
        self.register_buffer("query_types", torch.tensor(
            [LEARNABLE] * num_learnable + [CONDITIONAL] * num_conditional, dtype=torch.int64
        ), persistent=False)

    def _init_learnable_anchors(self) -> None:
        """Anchors start spread uniformly over the image with random sizes up to half of it."""
        with torch.no_grad():
            boxes = torch.rand(self.num_learnable, 4)
            boxes[:, 2:] = boxes[:, 2:] * 0.45 + 0.05
            self.learnable_anchors.weight.copy_(inverse_sigmoid(boxes))

    @classmethod
    def from_config(cls, cfg) -> Dict:
        """Reads MODEL.MQFORMER.DECODER, HIDDEN_DIM, the pixel decoder's level count and
        DENOISING.CONTENT_PROJECTION."""
        dec = cfg.MODEL.MQFORMER.DECODER
        pd = cfg.MODEL.MQFORMER.PIXEL_DECODER
        return {
            "hidden_dim": cfg.MODEL.MQFORMER.HIDDEN_DIM,
            "num_learnable": dec.NUM_LEARNABLE_QUERIES,
            "num_conditional": dec.NUM_CONDITIONAL_QUERIES,
            "num_layers": dec.NUM_LAYERS,
            "num_heads": dec.NUM_HEADS,
            "num_points": dec.NUM_POINTS,
            "num_levels": len(pd.IN_FEATURES) + pd.NUM_EXTRA_LEVELS,
            "dim_feedforward": dec.DIM_FEEDFORWARD,
            "dropout": dec.DROPOUT,
            "mask_enhanced_anchors": dec.MASK_ENHANCED_ANCHORS,
            "initial_prediction": dec.INITIAL_PREDICTION,
            "box_readout_size": dec.BOX_READOUT_SIZE,
            "class_similarity": dec.CLASS_SIMILARITY,
            "class_logit_scale": dec.CLASS_LOGIT_SCALE,
            "denoising_content_projection": cfg.MODEL.MQFORMER.DENOISING.CONTENT_PROJECTION,
            "selection_ranking": dec.SELECTION_RANKING,
        }

    @property
    def num_queries(self) -> int:
        return self.num_learnable + self.num_conditional

    def initial_queries(self, pixel: PixelDecoderOutput, text: TextBatch):
        """Content (B, N, C), unsigmoided anchors (B, N, 4) and the two-stage proposals (or None;
        with "token_centers" (B, N_c, 2) of the selected tokens besides their predictions)."""
        batch = pixel.memory.shape[0]
        contents, anchors, proposals = [], [], None
        if self.num_learnable > 0:
            contents.append(self.learnable_content.weight[None].expand(batch, -1, -1))
            anchors.append(self.learnable_anchors.weight[None].expand(batch, -1, -1))
        if self.selector is not None:
            selected = self.selector(pixel, self.heads, text)
            contents.append(selected.content)
            anchors.append(selected.anchors)
            proposals = dict(selected.proposals, token_centers=selected.token_centers)
        return torch.cat(contents, 1), torch.cat(anchors, 1), proposals

    def forward(self, pixel: PixelDecoderOutput, text: TextBatch, denoising=None) -> Dict:
        """
        Args:
            pixel: the pixel decoder's output (memory, mask features, ...).
            text: the batch's texts: embeddings (T, C) of the union vocabulary and valid (B, T)
                bool, the texts of each image's vocabulary (the conditional queries are selected
                by their best score over those).
            denoising: optional prefix queries with `content` (B, N_dn, C), `reference_boxes`
                (B, N_dn, 4) unsigmoided and `attn_mask` (N_dn + N, N_dn + N) bool (True =
                blocked), e.g. `denoising.DenoisingQueries`.

        Returns:
            dict with pred_logits (B, N, T), pred_boxes (B, N, 4), pred_masks (B, N, Hm, Wm),
            aux_outputs, query_types (N,), interm_outputs and selected_token_centers (B, N_c, 2)
            (when N_c > 0) and, with a prefix,
            dn_outputs (same keys for the N_dn prefix queries, incl. aux_outputs).
        """
        content, anchors, proposals = self.initial_queries(pixel, text)
        num_prefix, attn_mask = 0, None
        if denoising is not None:
            num_prefix, attn_mask = denoising.content.shape[1], denoising.attn_mask
            prefix = denoising.content if self.denoising_content is None else self.denoising_content(denoising.content)
            content = torch.cat([prefix.to(content.dtype), content], 1)
            anchors = torch.cat([denoising.reference_boxes.to(anchors.dtype), anchors], 1)
        predictions = self._run_layers(content, anchors, pixel, text.embeddings, attn_mask, num_prefix)
        outputs = self._split_outputs(predictions, num_prefix)
        outputs["query_types"] = self.query_types
        if proposals is not None:
            outputs["selected_token_centers"] = proposals.pop("token_centers")
            outputs["interm_outputs"] = proposals
        return outputs

    def _run_layers(self, queries: Tensor, anchors: Tensor, pixel: PixelDecoderOutput,
                    text_embeddings: Tensor, attn_mask: Optional[Tensor], num_prefix: int) -> List[Dict]:
        """All predictions, first to last: [initial (optional), layer 1, ..., layer L]."""
        predictions = []
        if self.initial_prediction:
            logits, masks, _ = self.heads.forward_prediction_heads(queries, pixel.mask_features, text_embeddings)
            predictions.append({"pred_logits": logits, "pred_boxes": anchors.sigmoid(), "pred_masks": masks})
        # Anchors are scaled into each level's padded frame for sampling (Deformable DETR).
        level_scale = torch.cat([pixel.valid_ratios, pixel.valid_ratios], -1)[:, None]  # (B, 1, L, 4)
        previous = anchors  # the previous layer's box, differentiable w.r.t. its deltas only
        for layer in self.layers:
            boxes = anchors.sigmoid()
            query_pos = self.anchor_to_position(box_position_embedding(boxes, self.hidden_dim // 2))
            queries = layer(
                queries, query_pos, boxes[:, :, None] * level_scale, pixel.memory, pixel.level_shapes,
                pixel.level_start_index, pixel.padding_mask, self_attn_mask=attn_mask, num_prefix=num_prefix,
                boxes=boxes, mask_features=pixel.mask_features, mask_valid_ratio=pixel.mask_valid_ratio,
            )
            logits, masks, deltas = self.heads.forward_prediction_heads(
                queries, pixel.mask_features, text_embeddings
            )
            # DINO's "look forward twice": layer i's predicted box is its deltas added to layer
            # i-1's box, which is differentiable w.r.t. layer i-1's deltas but not further back
            # (layer i-1's box was built on a detached anchor), so layer i's box loss reaches
            # exactly one earlier layer. Values: deltas + previous == deltas + anchors.
            predictions.append({"pred_logits": logits, "pred_boxes": (deltas + previous).sigmoid(),
                                "pred_masks": masks})
            previous = deltas + anchors  # this layer's box on its detached anchor
            anchors = previous.detach()  # the next layer samples around it, without gradient
        return predictions

    @staticmethod
    def _split_outputs(predictions: List[Dict], num_prefix: int) -> Dict:
        """Split every prediction into the prefix (denoising) part and the matching part."""
        matching = [{k: v[:, num_prefix:] for k, v in p.items()} for p in predictions]
        outputs = dict(matching[-1], aux_outputs=matching[:-1])
        if num_prefix > 0:
            prefix = [{k: v[:, :num_prefix] for k, v in p.items()} for p in predictions]
            outputs["dn_outputs"] = dict(prefix[-1], aux_outputs=prefix[:-1])
        return outputs
