"""Accuracy of every precision recipe on the built-in (trained) model, through the runtime: within 2 points
of FP32 (3 for the INT4 recipes) on the same questions. Minutes of CPU, so marked slow."""

import pytest

from nvila_edge.runtime.builtin import builtin_dir

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not (builtin_dir() / "config.json").is_file(),
                                                   reason="the built-in model is not installed")]

N, SEED = 500, 1234
TOLERANCE = {"fp16": 0.02, "fp8": 0.02, "int4": 0.03, "int8-int4": 0.03}


@pytest.fixture(scope="module")
def accuracy(tmp_path_factory):
    from nvila_edge.export.exporter import export_checkpoint
    from nvila_edge.runtime.evaluation import evaluate
    from nvila_edge.runtime.pipeline import Pipeline

    root = tmp_path_factory.mktemp("builtin-recipes")
    scores = {}
    for recipe in ("fp32", *TOLERANCE):
        export_checkpoint("builtin", root / recipe, recipe)
        scores[recipe] = evaluate(Pipeline.open(root / recipe, threads=2).answer_example, n=N, seed=SEED)["accuracy"]
    return scores


@pytest.mark.parametrize("recipe", list(TOLERANCE))
def test_recipe_stays_near_fp32(accuracy, recipe):
    assert accuracy[recipe] >= accuracy["fp32"] - TOLERANCE[recipe], accuracy
