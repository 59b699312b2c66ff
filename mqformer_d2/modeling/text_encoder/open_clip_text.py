"""The open_clip text tower as MQ-Former's text encoder, with an embedding cache.

open_clip (which imports timm) is imported when an encoder is built, not with the package.
"""
import functools
import logging
import os
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from torch import Tensor, nn

from .build import TEXT_ENCODER_REGISTRY
from .pretrained import load_text_tower
from .token_bag import TokenBagEmbedding

logger = logging.getLogger(__name__)

# A 2-layer, width-64 text tower registered with open_clip for tests and CPU training.
TINY_TEXT_MODEL_NAME = "mqformer-tiny-text"


@functools.lru_cache(maxsize=None)
def import_open_clip():
    """The open_clip module, imported on first use, with MQ-Former's model configs
    (TINY_TEXT_MODEL_NAME, from model_configs/) added to it."""
    import open_clip

    open_clip.add_model_config(os.path.join(os.path.dirname(__file__), "model_configs"))
    return open_clip


@TEXT_ENCODER_REGISTRY.register()
class OpenCLIPTextEncoder(nn.Module):
    """CLIP text tower (open_clip) + a trainable linear projection to the decoder width.

    Tower outputs are L2-normalised (and, with prompt templates, averaged over the templates as in
    CLIP's zero-shot classifiers) before the projection. While the tower is frozen its outputs are
    cached per text, so a fixed class list is encoded once, not every iteration; only the cheap
    projection runs each call. The cache is cleared when weights are loaded and is not used while
    the tower trains.

    Args:
        model_name: open_clip model config, e.g. "ViT-B-32" or TINY_TEXT_MODEL_NAME.
        pretrained: a local open_clip checkpoint of `model_name` (text tower taken from it, see
            pretrained.py), an open_clip pretrained tag (downloads), or None (random).
        freeze: keep the tower frozen (in eval mode, no gradients).
        output_dim: width of the returned embeddings.
        prompt_templates: templates with one "{}" for class names, used when `use_templates`.
        token_bag: add a trainable bag-of-words embedding of the text (`TokenBagEmbedding`) to
            the tower's unit-norm features before the projection (for towers trained from scratch).
    """

    # Cached texts at most (about 2 KiB each for a 512-d tower).
    cache_capacity = 20000

    @configurable
    def __init__(self, *, model_name: str, pretrained: Optional[str], freeze: bool, output_dim: int,
                 prompt_templates: Sequence[str] = (), token_bag: bool = False):
        super().__init__()
        bad = [t for t in prompt_templates if t.count("{}") != 1]
        if bad:
            raise ValueError(f"MODEL.MQFORMER.TEXT_ENCODER.PROMPT_TEMPLATES: {bad} need exactly one '{{}}'")
        local = _is_local_file(pretrained)
        open_clip = import_open_clip()
        self.clip = open_clip.create_model(model_name, pretrained=None if local else (pretrained or None))
        # Only the text tower is used: drop the image tower's weights.
        self.clip.visual = nn.Identity()
        if local:
            load_text_tower(self.clip, pretrained)
        # Where the tower's weights come from ("" = random initialisation, so far).
        self.tower_source = pretrained or ""
        self.tokenizer = open_clip.get_tokenizer(model_name)
        self.frozen = freeze
        for name, param in self.clip.named_parameters():
            # CLIP's image-text logit scale/bias take no part here: never trainable.
            param.requires_grad_(not freeze and not name.startswith("logit_"))
        self.tower_dim = int(open_clip.get_model_config(model_name)["embed_dim"])
        self.output_dim = output_dim
        self.projection = nn.Linear(self.tower_dim, output_dim)
        vocab_size = int(open_clip.get_model_config(model_name)["text_cfg"].get("vocab_size", 49408))
        self.token_bag = TokenBagEmbedding(vocab_size, self.tower_dim) if token_bag else None
        self.prompt_templates = tuple(prompt_templates)
        self._cache: "OrderedDict[Tuple[str, Tuple[str, ...]], Tensor]" = OrderedDict()
        self.train(self.training)

    @classmethod
    def from_config(cls, cfg) -> Dict:
        """Reads MODEL.MQFORMER.TEXT_ENCODER and MODEL.MQFORMER.HIDDEN_DIM."""
        text = cfg.MODEL.MQFORMER.TEXT_ENCODER
        return {
            "model_name": text.MODEL_NAME,
            "pretrained": text.PRETRAINED,
            "freeze": text.FREEZE,
            "output_dim": cfg.MODEL.MQFORMER.HIDDEN_DIM,
            "prompt_templates": list(text.PROMPT_TEMPLATES),
            "token_bag": text.TOKEN_BAG,
        }

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:
            # Frozen means frozen statistics too (dropout off).
            self.clip.eval()
        return self

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # New weights make cached embeddings stale.
        self._cache.clear()
        if any(name.startswith(f"{prefix}clip.transformer.") for name in state_dict):
            self.tower_source = "a checkpoint"
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def random_frozen_tower_warning(self) -> Optional[str]:
        """A warning when the tower is frozen but was never given weights (else None): it would
        then train nothing but its projection, on random text features."""
        if not self.frozen or self.tower_source:
            return None
        return ("MODEL.MQFORMER.TEXT_ENCODER.FREEZE is True but the CLIP text tower has no weights "
                "(MODEL.MQFORMER.TEXT_ENCODER.PRETRAINED is empty and MODEL.WEIGHTS held no text tower): it stays "
                "frozen at random values and only its projection trains. Set TEXT_ENCODER.PRETRAINED to a local "
                "open_clip checkpoint of TEXT_ENCODER.MODEL_NAME (docs/usage.md, section 6), or FREEZE False.")

    def forward(self, texts: Sequence[str], use_templates: bool = False) -> Tensor:
        """Embed `texts` -> (T, output_dim); templates (if any are configured) only when asked."""
        if isinstance(texts, str):
            raise TypeError("OpenCLIPTextEncoder expects a list of texts, got a single string")
        templates = self.prompt_templates if use_templates else ()
        features = self._tower_features(list(texts), templates)
        if self.token_bag is not None and len(texts) > 0:
            # The bag trains even under a frozen tower, so it is never cached.
            features = features + self.token_bag(self.tokenizer(list(texts)).to(features.device))
        return self.projection(features)

    def _tower_features(self, texts: List[str], templates: Tuple[str, ...]) -> Tensor:
        """(T, tower_dim) unit-norm tower features, from the cache when the tower is frozen."""
        if not texts:
            return self.projection.weight.new_zeros(0, self.tower_dim)
        if not self.frozen:
            return self._encode(texts, templates)
        missing = list(OrderedDict.fromkeys(t for t in texts if (t, templates) not in self._cache))
        if missing:
            with torch.no_grad():
                encoded = self._encode(missing, templates)
            for text, feature in zip(missing, encoded):
                self._cache[(text, templates)] = feature
        for text in texts:
            self._cache.move_to_end((text, templates))
        while len(self._cache) > self.cache_capacity:
            self._cache.popitem(last=False)
        device = self.projection.weight.device
        return torch.stack([self._cache[(t, templates)] for t in texts]).to(device)

    def _encode(self, texts: List[str], templates: Tuple[str, ...]) -> Tensor:
        """Run the tower: (T, tower_dim) unit-norm features, template-averaged if templates."""
        device = self.projection.weight.device
        if not templates:
            return F.normalize(self.clip.encode_text(self.tokenizer(texts).to(device)), dim=-1)
        prompts = [template.format(text) for text in texts for template in templates]
        features = F.normalize(self.clip.encode_text(self.tokenizer(prompts).to(device)), dim=-1)
        features = features.view(len(texts), len(templates), -1).mean(1)
        return F.normalize(features, dim=-1)


def _is_local_file(pretrained: Optional[str]) -> bool:
    """Whether TEXT_ENCODER.PRETRAINED names a local file (an error if it looks like a path to
    nothing) rather than an open_clip pretrained tag."""
    if not pretrained or pretrained.startswith(("hf-hub:", "local-dir:")):
        return False
    if os.path.isfile(pretrained):
        return True
    if os.sep in pretrained or os.path.splitext(pretrained)[1] in (".pt", ".pth", ".bin", ".safetensors"):
        raise FileNotFoundError(f"MODEL.MQFORMER.TEXT_ENCODER.PRETRAINED: {pretrained} does not exist")
    return False

