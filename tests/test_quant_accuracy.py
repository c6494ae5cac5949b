"""Accuracy of every precision recipe on the built-in (trained) model, through the runtime: within the
recipe's tolerance of FP32 (``engines/recipes.py``: 2 points, 3 for the INT4 recipes) on the same questions.
Minutes of CPU, so marked slow."""

import pytest

from nvila_edge.engines.recipes import RECIPES
from nvila_edge.runtime.builtin import builtin_dir

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not (builtin_dir() / "config.json").is_file(),
                                                   reason="the built-in model is not installed")]

N, SEED = 500, 1234
QUANTIZED = [name for name in RECIPES if name != "fp32"]


@pytest.fixture(scope="module")
def accuracy(tmp_path_factory):
    from nvila_edge.export.exporter import export_checkpoint
    from nvila_edge.runtime.evaluation import evaluate
    from nvila_edge.runtime.pipeline import Pipeline

    root = tmp_path_factory.mktemp("builtin-recipes")
    scores = {}
    for recipe in RECIPES:
        export_checkpoint("builtin", root / recipe, recipe)
        scores[recipe] = evaluate(Pipeline.open(root / recipe, threads=2).answer_example, n=N, seed=SEED)["accuracy"]
    return scores


@pytest.mark.parametrize("recipe", QUANTIZED)
def test_recipe_stays_near_fp32(accuracy, recipe):
    assert accuracy[recipe] >= accuracy["fp32"] - RECIPES[recipe].accuracy_drop, accuracy
