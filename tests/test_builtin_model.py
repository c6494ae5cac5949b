"""The shipped built-in model: its layout, and the same answers through the PyTorch reference and the export."""

import json

import pytest

from nvila_edge.export.checkpoint import load_checkpoint, validate_checkpoint
from nvila_edge.export.exporter import export_checkpoint
from nvila_edge.export.reference import ReferencePipeline
from nvila_edge.runtime.builtin import resolve_model
from nvila_edge.runtime.evaluation import evaluate
from nvila_edge.runtime.pipeline import Pipeline

EVAL_SEED = 1234  # never used in training (see export/train/trainer.py)


@pytest.fixture(scope="module")
def builtin_export(tmp_path_factory):
    out = tmp_path_factory.mktemp("builtin") / "export"
    export_checkpoint("builtin", out)
    return out


def test_builtin_is_a_published_layout_checkpoint_under_25_mb():
    root = resolve_model("builtin")
    config = validate_checkpoint(root)
    assert config.is_dynamic_s2 and config.projector_type == "mlp_downsample"
    assert config.llm.hidden_size % 128 == 0 and config.llm.intermediate_size % 128 == 0
    assert json.loads((root / "config.json").read_text())["model_type"] == "llava_llama"
    assert sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) <= 25 * 2**20


def test_eval_through_the_export_equals_the_reference(builtin_export):
    reference = evaluate(ReferencePipeline(load_checkpoint("builtin")).answer_example, n=21, seed=EVAL_SEED)
    exported = evaluate(Pipeline.open(builtin_export, threads=2).answer_example, n=21, seed=EVAL_SEED)
    assert exported["families"] == reference["families"]
    assert exported["examples_wrong"] == reference["examples_wrong"]
