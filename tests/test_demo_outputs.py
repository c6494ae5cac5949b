"""The demo's options and its output files: the recording (only under its name once finalised) and the JSONL."""

import dataclasses
import json

import cv2
import numpy as np
import pytest

from nvila_edge.errors import InputError
from nvila_edge.jetson.demo import AnswerRecord, DemoOptions, JsonlWriter, read_records
from nvila_edge.jetson.demo.recorder import VideoRecorder


def record(index: int, text: str) -> AnswerRecord:
    return AnswerRecord(index=index, time="2025-01-01T00:00:00.000+00:00", source="test://shapes",
                        prompt="Describe the image.", kind="image", frames=1, frame_index=10 * index,
                        frame_age_ms=12.5, text=text, tokens=5, visual_tokens=192, preprocess_ms=4.0,
                        vision_ms=20.0, projector_ms=3.0, ttft_ms=60.0, frame_to_first_token_ms=73.0, answer_ms=90.0,
                        decode_tokens_per_s=150.0, frames_dropped=2, source_status="running",
                        telemetry={"process_rss_mb": 120.0})


def gradient_frames(n: int, width=160, height=120) -> list[np.ndarray]:
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    return [np.broadcast_to((x + 20 * i) % 256, (height, width, 3)).astype(np.uint8) for i in range(n)]


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_recording_appears_only_when_finalised_and_plays_back(tmp_path, suffix):
    out = tmp_path / "rec" / f"demo{suffix}"
    recorder = VideoRecorder(out, fps=10)
    frames = gradient_frames(12)
    for frame in frames:
        recorder.write(frame)
    assert not out.exists() and recorder.partial.exists()  # a half-written file never has the real name
    assert recorder.close() == out
    assert out.exists() and not recorder.partial.exists()
    capture = cv2.VideoCapture(str(out))
    read = []
    while (ok_frame := capture.read())[0]:
        read.append(ok_frame[1])
    capture.release()
    assert len(read) == 12 and read[0].shape == (120, 160, 3)
    assert np.abs(read[5].astype(int) - frames[5]).mean() < 8  # lossy, but the same picture


def test_frames_of_another_size_are_fitted_and_an_empty_recording_leaves_no_file(tmp_path):
    recorder = VideoRecorder(tmp_path / "a.avi", fps=5)
    recorder.write(gradient_frames(1)[0])
    recorder.write(gradient_frames(1, width=320, height=240)[0])  # a camera back at another resolution
    assert recorder.close() == tmp_path / "a.avi"
    capture = cv2.VideoCapture(str(tmp_path / "a.avi"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 2 and int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)) == 160
    empty = VideoRecorder(tmp_path / "empty.mp4", fps=5)
    assert empty.close() is None and list(tmp_path.iterdir()) == [tmp_path / "a.avi"]


def test_jsonl_holds_whole_flushed_lines_while_open(tmp_path):
    path = tmp_path / "out" / "answers.jsonl"
    writer = JsonlWriter(path)
    writer.write(record(1, "a red circle"))
    lines = path.read_text().splitlines()  # readable before close: every record is flushed
    assert len(lines) == 1 and json.loads(lines[0])["text"] == "a red circle"
    writer.write(record(2, "ein grüner Stern"))
    writer.close()
    assert read_records(path) == [record(1, "a red circle"), record(2, "ein grüner Stern")]
    with pytest.raises(ValueError, match="closed"):
        writer.write(record(3, "late"))


def test_the_stats_line_shows_a_decode_rate_only_from_two_decode_steps():
    one, three = (dataclasses.replace(record(1, "a"), decode_steps=steps) for steps in (1, 3))
    assert "| decode - |" in one.stats_line() and "tok/s" not in one.stats_line()
    assert "| decode 150.0 tok/s |" in three.stats_line()


def test_unwritable_jsonl_is_a_one_line_input_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(InputError, match="--jsonl .*pick a writable path"):
        JsonlWriter(blocker / "answers.jsonl")


@pytest.mark.parametrize("kwargs, message", [
    ({"every": -1}, "--every"),
    ({"fps": 2.0}, "give --frames N as well"),
    ({"frames": 0}, "--frames 0"),
    ({"frames": 4, "fps": 0.0}, "--fps 0.0"),
    ({"max_answers": 0}, "--max-answers 0"),
    ({"record": "out.mov"}, ".mp4 or .avi"),
    ({"prompt": "  "}, "--prompt is empty"),
])
def test_options_refuse_what_cannot_work(kwargs, message):
    with pytest.raises(InputError, match=message):
        DemoOptions(**kwargs)


def test_options_defaults_describe_the_main_command():
    options = DemoOptions()
    assert (options.source, options.model, options.prompt, options.kind) == (
        "test://shapes", "builtin", "Describe the image.", "image")
    video = DemoOptions(frames=8)
    assert video.kind == "video" and video.video_fps == 2.0
