"""`nvila-edge tokens` through the real CLI entry point: presets, checkpoint folders and config.json paths."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nvila_edge.cli import main
from nvila_edge.runtime.presets import preset_files


def tokens(capsys, *argv: str) -> dict:
    assert main(["tokens", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def write_config_folder(root, preset: str):
    """Only the JSON files of a checkpoint folder, in the published layout (no weights needed)."""
    for name, content in preset_files(preset).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content))
    return root


@pytest.mark.parametrize("preset,size,visual,tiles", [
    ("nvila-8b", "1344x1344", 2304, 14),
    ("nvila-8b", "1920x1080", 3072, 17),
    ("nvila-lite-2b", "448x448", 121, 1),
    ("nvila-lite-2b", "1024x1024", 1210, 10),
    ("nvila-lite-2b", "640x480", 1573, 13),
])
def test_presets_print_published_counts(capsys, preset, size, visual, tiles):
    out = tokens(capsys, "--model", preset, "--image-size", size)
    assert (out["visual_tokens"], out["tiles"], out["model"]) == (visual, tiles, preset)
    assert out["image_size"] == [int(v) for v in size.split("x")]


def test_block_and_positions_are_reported(capsys):
    out = tokens(capsys, "--model", "nvila-8b", "--image-size", "1080x1920")
    assert (out["mode"], out["block"], out["llm_positions"]) == ("dynamic_s2", [5, 2], 2561)
    lite = tokens(capsys, "--model", "nvila-lite-2b", "--image-size", "640x480")
    assert (lite["mode"], lite["block"], lite["grid"], lite["llm_positions"]) == ("dynamic", None, [3, 4], 13 * 123)


def test_video_frames(capsys):
    out = tokens(capsys, "--model", "nvila-8b", "--frames", "8")
    assert (out["mode"], out["tiles"], out["visual_tokens"], out["llm_positions"]) == ("video", 8, 2048, 2056)


def test_checkpoint_folder_and_its_config_json(capsys, tmp_path):
    folder = write_config_folder(tmp_path / "NVILA-Lite-2B", "nvila-lite-2b")
    from_folder = tokens(capsys, "--model", str(folder), "--image-size", "640x480")
    from_file = tokens(capsys, "--model", str(folder / "config.json"), "--image-size", "640x480")
    assert from_folder["visual_tokens"] == from_file["visual_tokens"] == 1573
    assert from_folder["model"] == str(folder)


def test_bad_arguments(capsys, tmp_path):
    assert main(["tokens", "--model", "no-such-model", "--image-size", "640x480"]) == 1
    assert "neither a preset" in capsys.readouterr().err
    assert main(["tokens", "--model", "nvila-8b"]) == 1
    assert "--image-size" in capsys.readouterr().err
    (tmp_path / "llm").mkdir()
    assert main(["tokens", "--model", str(tmp_path), "--image-size", "640x480"]) == 1  # incomplete folder
    with pytest.raises(SystemExit):
        main(["tokens", "--model", "nvila-8b", "--image-size", "640"])


def test_needs_no_torch():
    code = ("import sys, json; from nvila_edge.cli import main; "
            "main(['tokens', '--model', 'nvila-8b', '--image-size', '640x480']); "
            "print(json.dumps(sorted(m for m in ('torch', 'transformers') if m in sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    *report, loaded = result.stdout.strip().splitlines()
    assert json.loads(loaded) == []
    assert json.loads("\n".join(report))["visual_tokens"] == 3072
