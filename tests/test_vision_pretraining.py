"""The vision stage's patch labels sit under the right patches of the right tiles, and the stage trains."""

import numpy as np
import torch

from nvila_edge.export.modeling.nvila import NvilaModel
from nvila_edge.export.train.builtin_config import builtin_files
from nvila_edge.export.train.region_labels import COLOR_INDEX, label_map, patch_labels
from nvila_edge.export.train.settings import VisionStage
from nvila_edge.export.train.trainer import init_weights
from nvila_edge.export.train.vision_pretraining import PatchHeads, patch_batch, pretrain_vision
from nvila_edge.runtime.config import NvilaConfig
from nvila_edge.runtime.tiling import plan_tiles
from nvila_edge.runtime.world.scene import SHAPES, Scene, Shape


def builtin_config() -> NvilaConfig:
    return NvilaConfig.from_files(builtin_files())


def on_square(pixels_per_patch: float, patches: int, drawn: tuple[int, int]) -> np.ndarray:
    """Which patches of one axis the square covers, labels being read at each patch's first pixel."""
    first = (np.arange(patches) * pixels_per_patch).astype(int)
    return (first >= drawn[0]) & (first <= drawn[1])


def test_a_centred_square_is_labelled_on_exactly_its_patches():
    config = builtin_config()
    g = config.vision.grid  # 8 patches per 64 px tile
    scene = Scene(128, 128, "plain", 0, [Shape("square", "red", 64.0, 64.0, 64.0)])
    columns = np.nonzero(label_map(scene.shapes, 128, 128)[0].any(axis=0))[0]
    drawn = (int(columns[0]), int(columns[-1]))
    plan = plan_tiles(config, 128, 128)
    assert plan.scale_tiles == (1, 4) and plan.block == (2, 2)
    labels = patch_labels(scene, plan, g)  # [5, 64, 2]: the 64 px view, then the 128 px view's 2 x 2 tiles
    assert labels.shape == (5, g * g, 2)
    kinds = labels[..., 0].reshape(5, g, g)
    square = SHAPES.index("square") + 1
    small = on_square(128 / g, g, drawn)
    np.testing.assert_array_equal(kinds[0], np.outer(small, small) * square)
    top = on_square(128 / (2 * g), 2 * g, drawn)
    whole = kinds[1:].reshape(2, 2, g, g).transpose(0, 2, 1, 3).reshape(2 * g, 2 * g)  # row-major tiles
    np.testing.assert_array_equal(whole, np.outer(top, top) * square)
    assert kinds[1, -1, -1] == square and kinds[4, 0, 0] == square and kinds[1, 0, 0] == 0
    assert set(np.unique(labels[..., 1])) == {0, COLOR_INDEX["red"]}


def test_patch_batch_labels_every_patch_of_every_tile():
    model = NvilaModel(builtin_config())
    pixels, labels = patch_batch(model, np.random.default_rng(0), images=4)
    assert pixels.shape[1:] == (3, 64, 64)
    assert labels.shape == (len(pixels) * model.config.vision.grid ** 2, 2)
    assert (labels[:, 0] > 0).any() and (labels[:, 0] == 0).any()


def probe_loss(model: NvilaModel, pixels: torch.Tensor, labels: torch.Tensor) -> float:
    """Loss of fresh linear patch heads fitted on the frozen tower's features (the same seeded fit each time)."""
    torch.manual_seed(0)
    heads = PatchHeads(model.config.vision.hidden_size)
    optimizer = torch.optim.Adam(heads.parameters(), lr=1e-2)
    with torch.no_grad():
        features = model.vision_tower(pixels).flatten(0, 1)
    for _ in range(50):
        loss = heads.loss(features, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return loss.item()


def test_the_vision_stage_makes_patches_linearly_readable():
    torch.manual_seed(0)
    model = NvilaModel(builtin_config())
    init_weights(model)
    pixels, labels = patch_batch(model, np.random.default_rng(7), images=8)  # held out: the stage uses seed 1
    untrained = probe_loss(model, pixels, labels)
    pretrain_vision(model, VisionStage(steps=60, batch_size=4, warmup=5), seed=1)
    assert probe_loss(model, pixels, labels) < 0.8 * untrained
