"""mqformer_d2.analysis.readouts: RoIAlign grids keep geometry that mask averages throw away."""
import torch

from mqformer_d2.analysis import gt_mask_crop, mask_average, probe_accuracy, roi_grid

torch.set_num_threads(1)


def draw(shape: str, size: int, left: int, top: int, canvas: int = 48):
    """A square or a disc of side / diameter `size` at (left, top): bool (canvas, canvas) mask and
    its XYXY box."""
    ys, xs = torch.meshgrid(torch.arange(canvas) + 0.5, torch.arange(canvas) + 0.5, indexing="ij")
    inside_box = (xs >= left) & (xs < left + size) & (ys >= top) & (ys < top + size)
    if shape == "square":
        mask = inside_box
    else:
        radius = size / 2
        mask = (xs - left - radius) ** 2 + (ys - top - radius) ** 2 <= radius**2
    return mask, torch.tensor([left, top, left + size, top + size], dtype=torch.float32)


def shapes_set(seed: int, count: int = 60):
    """Squares and discs at random sizes and places: feature maps (N, 2, 48, 48) whose channel 0
    is the shape and channel 1 is constant, masks (N, 48, 48), boxes (N, 4), names."""
    generator = torch.Generator().manual_seed(seed)
    maps, masks, boxes, names = [], [], [], []
    for index in range(count):
        name = ("square", "circle")[index % 2]
        size = int(torch.randint(10, 24, (1,), generator=generator))
        left, top = (int(v) for v in torch.randint(0, 48 - size, (2,), generator=generator))
        mask, box = draw(name, size, left, top)
        maps.append(torch.stack([mask.float(), torch.ones(48, 48)]))
        masks.append(mask)
        boxes.append(box)
        names.append(name)
    return torch.stack(maps), torch.stack(masks), torch.stack(boxes), names


def test_roi_grid_tells_a_square_from_a_circle_where_mask_averaging_cannot():
    fit, evaluate = shapes_set(seed=0), shapes_set(seed=1)

    def grids(maps, boxes):
        return torch.cat([roi_grid(m, b[None], spatial_scale=1.0, grid=4) for m, b in zip(maps, boxes)])

    roi_fit, roi_eval = grids(fit[0], fit[2]), grids(evaluate[0], evaluate[2])
    assert roi_fit.shape == (60, 2 * 16)
    assert probe_accuracy(roi_fit, fit[3], roi_eval, evaluate[3])["eval"] >= 95.0

    def averages(maps, masks):
        return torch.cat([mask_average(m, k[None]) for m, k in zip(maps, masks)])

    averaged = averages(fit[0], fit[1])
    # Under its own mask every shape averages to the same vector: no probe can name it.
    torch.testing.assert_close(averaged, averaged[:1].expand_as(averaged))
    assert probe_accuracy(averaged, fit[3], averages(evaluate[0], evaluate[1]), evaluate[3])["eval"] == 50.0


def test_roi_grid_samples_cells_in_input_pixels():
    ramp = torch.arange(16.0).expand(16, 16)[None]  # (1, 16, 16): value = x index
    grid = roi_grid(ramp, torch.tensor([[0.0, 0.0, 8.0, 8.0]]), spatial_scale=1.0, grid=4)
    # aligned=True: pixel i's centre is at x = i + 0.5, so bin [0, 2) averages x - 0.5 to 0.5.
    torch.testing.assert_close(grid.view(4, 4)[0], torch.tensor([0.5, 2.5, 4.5, 6.5]))
    half = roi_grid(ramp, torch.tensor([[0.0, 0.0, 16.0, 16.0]]), spatial_scale=0.5, grid=2)
    torch.testing.assert_close(half.view(2, 2)[0], torch.tensor([1.5, 5.5]))  # a stride-2 map


def test_gt_mask_crop_is_box_relative_and_names_shapes():
    masks, boxes = zip(draw("square", 20, 4, 10), draw("square", 16, 28, 28), draw("circle", 20, 4, 10))
    crops = gt_mask_crop(torch.stack(masks), torch.stack(boxes), size=16).view(3, 16, 16)
    assert crops.shape == (3, 16, 16)
    interior = crops[:, 2:-2, 2:-2]
    torch.testing.assert_close(interior[0], interior[1])  # the same shape elsewhere, at another size
    assert float(interior[0].min()) == 1.0
    assert float(crops[0, 0, 0]) > 0.5 and float(crops[2, 0, 0]) < 0.05  # a disc leaves its corners empty
    assert float(crops[2, 8, 8]) == 1.0
    fit, evaluate = shapes_set(seed=0), shapes_set(seed=1)
    result = probe_accuracy(gt_mask_crop(fit[1], fit[2]), fit[3], gt_mask_crop(evaluate[1], evaluate[2]), evaluate[3])
    assert result["eval"] == 100.0
