"""The decoder's box read-out: RoIAlign grids of the mask features under each anchor box."""
import pytest
import torch

from mqformer_d2.modeling.decoder import MixedQueryDecoder
from mqformer_d2.modeling.decoder.box_readout import BoxReadout, box_grid_features
from mqformer_d2.modeling.pixel_decoder import PixelDecoderOutput
from mqformer_d2.modeling.text_batch import TextBatch

DIM = 8


def _block_map(height=32, width=32):
    """(1, DIM, H, W) zeros with channel 0 set to 1 on rows 4-11 and columns 8-15."""
    features = torch.zeros(1, DIM, height, width)
    features[0, 0, 4:12, 8:16] = 1.0
    return features


def test_grid_reads_under_the_box():
    features = _block_map()
    full = torch.tensor([[1.0, 1.0]])
    on_block = torch.tensor([[[12 / 32, 8 / 32, 8 / 32, 8 / 32]]])  # (cx, cy, w, h) of the block
    off_block = torch.tensor([[[24 / 32, 24 / 32, 8 / 32, 8 / 32]]])
    grid = box_grid_features(features, on_block, full, size=4).view(DIM, 4, 4)
    assert torch.allclose(grid[0], torch.ones(4, 4))
    assert not grid[1:].any()
    assert not box_grid_features(features, off_block, full, size=4).any()


def test_grid_boxes_are_relative_to_the_unpadded_image():
    """With the right half of the map padding, x = 0.75 of the image is column 12 of the map."""
    features = _block_map()
    left_half = torch.tensor([[0.5, 1.0]])  # (w, h) unpadded fraction
    box = torch.tensor([[[0.75, 8 / 32, 0.5, 8 / 32]]])  # image columns 8-15 of 16 = map columns 8-15
    grid = box_grid_features(features, box, left_half, size=2).view(DIM, 2, 2)
    assert torch.allclose(grid[0], torch.ones(2, 2))
    shifted = box_grid_features(features, box, torch.tensor([[1.0, 1.0]]), size=2).view(DIM, 2, 2)
    assert not shifted[0].any()  # read as if unpadded, the box lands at columns 16-31


def test_readout_output_shape_and_batch_index():
    readout = BoxReadout(DIM, 3)
    features = torch.cat([_block_map(), torch.zeros(1, DIM, 32, 32)])
    boxes = torch.tensor([[12 / 32, 8 / 32, 8 / 32, 8 / 32]]).expand(2, 5, 4)
    grids = box_grid_features(features, boxes, torch.ones(2, 2), size=3)
    assert grids.shape == (2, 5, DIM * 9)
    assert grids[0].any() and not grids[1].any()  # image 1's boxes read image 1's (empty) map
    assert readout(torch.randn(2, 5, DIM), boxes, features, torch.ones(2, 2)).shape == (2, 5, DIM)


def _pixel_output(batch=2, size=16):
    """A PixelDecoderOutput of one 8x8 level and (B, DIM, 16, 16) mask features."""
    tokens = 64
    return PixelDecoderOutput(
        memory=torch.randn(batch, tokens, DIM), spatial_shapes=torch.tensor([[8, 8]]),
        level_start_index=torch.tensor([0]), level_shapes=[(8, 8)], padding_mask=torch.zeros(batch, tokens, dtype=torch.bool),
        valid_ratios=torch.ones(batch, 1, 2), mask_features=torch.randn(batch, DIM, size, size, requires_grad=True),
        mask_valid_ratio=torch.ones(batch, 2),
    )


@pytest.mark.parametrize("size", [0, 2])
def test_class_logits_see_the_mask_features_only_through_the_readout(size):
    torch.manual_seed(0)
    decoder = MixedQueryDecoder(
        hidden_dim=DIM, num_learnable=4, num_conditional=0, num_layers=2, num_heads=2, num_points=2,
        num_levels=1, dim_feedforward=16, dropout=0.0, mask_enhanced_anchors=False,
        initial_prediction=False, box_readout_size=size,
    )
    pixel = _pixel_output()
    text = TextBatch(["a", "b", "c"], torch.randn(3, DIM), torch.ones(2, 3, dtype=torch.bool), [torch.arange(3)] * 2)
    out = decoder(pixel, text)
    out["pred_logits"].sum().backward()
    reached = pixel.mask_features.grad is not None and pixel.mask_features.grad.abs().sum() > 0
    assert reached == (size > 0)
    assert (decoder.layers[0].box_readout is None) == (size == 0)
