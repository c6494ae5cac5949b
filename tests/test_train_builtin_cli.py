"""`nvila-edge train-builtin` end to end, a few steps of each stage: a checkpoint the rest of the tool loads."""

import json

import numpy as np

from nvila_edge.cli import main
from nvila_edge.export.checkpoint import load_checkpoint
from nvila_edge.export.reference import ReferencePipeline
from nvila_edge.runtime.builtin import builtin_dir
from nvila_edge.runtime.request import Request
from nvila_edge.runtime.world.scene import random_scene, render_scene


def test_a_short_run_writes_a_loadable_nvila_checkpoint(tmp_path, capsys):
    out = tmp_path / "shapes"
    shipped = sorted(p.relative_to(builtin_dir()).as_posix() for p in builtin_dir().rglob("*") if p.is_file())
    assert main(["train-builtin", "--out", str(out), "--vision-steps", "3", "--steps", "2", "--eval-every", "2"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["out"] == str(out) and summary["steps"] == 2
    assert "vision stage: patch kind accuracy" in captured.out + captured.err
    assert "step 2: accuracy" in captured.out + captured.err
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == shipped
    checkpoint = load_checkpoint(out)
    assert checkpoint.config.s2_scales == (64, 128)
    image = render_scene(random_scene(np.random.default_rng(0)))
    ReferencePipeline(checkpoint).ask(Request("Describe the image.", images=[image]))  # loads and runs
    assert [p.name for p in tmp_path.iterdir()] == ["shapes"]  # no temporary folder left beside it


def test_a_question_probe_layer_the_llm_does_not_have_is_refused_before_training(tmp_path, capsys):
    out = tmp_path / "ckpt"
    assert main(["train-builtin", "--out", str(out), "--question-layer", "4"]) == 1
    assert "the question probe's layer must be 0..3, got 4" in capsys.readouterr().err
    assert not out.exists()
