"""``nvila-edge serve`` chat: the real ``openai`` client against a real server process on a free loopback port,
answered by the built-in model; and the bad-input table, each case a 4xx OpenAI-shaped error after which the
server keeps serving."""

from __future__ import annotations

import base64
from pathlib import Path

import cv2
import numpy as np
import openai
import pytest
from served import ServerProcess

from nvila_edge.runtime.pipeline import Pipeline
from nvila_edge.runtime.request import Request
from nvila_edge.runtime.world.scene import Scene, Shape, render_scene

MAX_IMAGE_MP = 1.0  # small limits, so the over-limit cases stay cheap
MAX_BODY_MB = 2.0
MAX_IMAGES = 100  # more than the context holds, so that limit is the context's


def shapes_image(*shapes: Shape, width: int = 160, height: int = 120) -> np.ndarray:
    return render_scene(Scene(width, height, "plain", 0, list(shapes)))


RED_CIRCLE = shapes_image(Shape("circle", "red", 80, 60, 50))
BLUE_SQUARE = shapes_image(Shape("square", "blue", 60, 50, 40))
RED_CIRCLE_GREEN_STAR = shapes_image(Shape("circle", "red", 80, 60, 50), Shape("star", "green", 30, 30, 30))


def png(rgb: np.ndarray) -> bytes:
    return cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def question(text: str, *urls: str) -> list[dict]:
    parts = [{"type": "text", "text": text}] + [{"type": "image_url", "image_url": {"url": u}} for u in urls]
    return [{"role": "user", "content": parts}]


@pytest.fixture(scope="module")
def allowed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("allowed")
    (folder / "red.png").write_bytes(png(RED_CIRCLE))
    return folder


@pytest.fixture(scope="module")
def server(builtin_engines, allowed):
    process = ServerProcess(builtin_engines, "--allow-files", str(allowed), "--max-image-mp", str(MAX_IMAGE_MP),
                            "--max-body-mb", str(MAX_BODY_MB), "--max-images", str(MAX_IMAGES)).start()
    yield process
    assert process.stop() == 0, process.log()
    assert "Traceback" not in process.log()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def model_id(client):
    return client.models.list().data[0].id


@pytest.fixture(scope="module")
def pipeline(builtin_engines):
    return Pipeline.open(builtin_engines, threads=1)


def test_models_lists_the_one_served_model(client, builtin_engines):
    models = client.models.list().data
    assert [(m.id, m.object) for m in models] == [(builtin_engines.name, "model")]


def test_a_red_circle_is_named_red(client, model_id):
    reply = client.chat.completions.create(model=model_id, temperature=0,
                                           messages=question("What colour is the circle?", data_url(png(RED_CIRCLE))))
    assert "red" in reply.choices[0].message.content.lower()
    assert reply.choices[0].finish_reason == "stop"


def test_streamed_chunks_add_up_to_the_greedy_answer_and_usage_counts_the_prompt(client, model_id, pipeline):
    messages = question("Describe the image.", data_url(png(RED_CIRCLE)))
    whole = client.chat.completions.create(model=model_id, messages=messages, temperature=0)
    chunks = list(client.chat.completions.create(model=model_id, messages=messages, temperature=0, stream=True,
                                                 stream_options={"include_usage": True}))
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) >= 2
    assert "".join(pieces) == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    expected = pipeline.ask(Request("Describe the image.", images=[RED_CIRCLE]))
    assert whole.choices[0].message.content == expected.text
    for usage in (whole.usage, chunks[-1].usage):
        assert usage.prompt_tokens == expected.prompt_positions
        assert usage.completion_tokens == len(expected.token_ids)
        assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
        assert usage.visual_tokens == expected.visual_tokens > 0


def test_several_images_are_one_multi_image_question(client, model_id, pipeline):
    reply = client.chat.completions.create(model=model_id, temperature=0, messages=question(
        "Describe the image.", data_url(png(RED_CIRCLE)), data_url(png(BLUE_SQUARE))))
    expected = pipeline.ask(Request("Describe the image.", images=[RED_CIRCLE, BLUE_SQUARE]))
    assert reply.choices[0].message.content == expected.text
    assert (reply.usage.prompt_tokens, reply.usage.visual_tokens) == (expected.prompt_positions,
                                                                       expected.visual_tokens)


def test_max_tokens_stop_seed_and_sampling(client, model_id):
    messages = question("Describe the image.", data_url(png(RED_CIRCLE)))
    one = client.chat.completions.create(model=model_id, messages=messages, max_completion_tokens=1)
    assert (one.usage.completion_tokens, one.choices[0].finish_reason) == (1, "length")
    greedy = client.chat.completions.create(model=model_id, messages=messages, temperature=0).choices[0]
    cut = greedy.message.content.split()[-1]  # the answer's last word
    stopped = client.chat.completions.create(model=model_id, messages=messages, temperature=0, stop=[cut, "zzz"])
    assert stopped.choices[0].message.content == greedy.message.content[:greedy.message.content.index(cut)]
    assert stopped.choices[0].finish_reason == "stop"
    streamed = client.chat.completions.create(model=model_id, messages=messages, temperature=0, stop=cut, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed) == stopped.choices[0].message.content
    two_shapes = question("Describe the image.", data_url(png(RED_CIRCLE_GREEN_STAR)))
    sampled = [client.chat.completions.create(model=model_id, messages=two_shapes, temperature=1.5, top_p=0.95,
                                              seed=seed, max_tokens=12).choices[0].message.content
               for seed in (7, 7, 8, 9, 10, 11)]
    assert sampled[0] == sampled[1]  # the same seed gives the same answer
    assert len(set(sampled)) > 1  # sampling at a high temperature varies with the seed


def test_file_urls_inside_an_allowed_folder_are_read(client, model_id, allowed):
    reply = client.chat.completions.create(model=model_id, temperature=0, messages=question(
        "What colour is the circle?", (allowed / "red.png").as_uri()))
    assert "red" in reply.choices[0].message.content.lower()


def test_the_openai_client_raises_the_servers_message(client, model_id):
    with pytest.raises(openai.BadRequestError, match="remote image URLs are not fetched"):
        client.chat.completions.create(model=model_id, messages=question("Hi", "https://example.com/cat.jpg"))
    with pytest.raises(openai.NotFoundError, match="is not served here"):
        client.chat.completions.create(model="gpt-4o", messages=question("Hi"))


def chat(model: str, messages) -> dict:
    return {"model": model, "messages": messages, "max_tokens": 4}


def bad_inputs(model: str, allowed) -> dict[str, tuple[str, str, bytes | dict, int, str | None]]:
    """name -> (method, path, body, expected status, expected error code)."""
    tiny = data_url(png(shapes_image(Shape("circle", "red", 16, 16, 12), width=32, height=32)))
    huge = data_url(png(np.zeros((1000, 1200, 3), np.uint8)))  # 1.2 MP, compresses to a few kB
    body = "/v1/chat/completions"
    return {
        "malformed JSON": ("POST", body, b'{"model": "x", "messages": [', 400, "invalid_json"),
        "no messages": ("POST", body, chat(model, []), 400, None),
        "unknown content part type": ("POST", body, chat(model, [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}]}]), 400, "unknown_content_type"),
        "invalid base64": ("POST", body, chat(model, question("Hi", "data:image/png;base64,@@not base64@@")), 400,
                           "invalid_base64"),
        "bytes that are not an image": ("POST", body, chat(model, question("Hi", data_url(b"plain text, no image"))),
                                        400, "invalid_image"),
        "image over the pixel limit": ("POST", body, chat(model, question("Hi", huge)), 413, "image_too_large"),
        "body over the size limit": ("POST", body, chat(model, question("x" * int(MAX_BODY_MB * 2**20 + 10))), 413,
                                     "body_too_large"),
        "more images than the context holds": ("POST", body, chat(model, question("Hi", *[tiny] * 80)), 400,
                                               "invalid_input"),
        "an http image URL": ("POST", body, chat(model, question("Hi", "http://192.0.2.1/a.jpg")), 400, "remote_url"),
        "a file URL outside the allowed folders": ("POST", body, chat(model, question("Hi", "file:///etc/hostname")),
                                                   400, "file_not_allowed"),
        "a file URL escaping an allowed folder": ("POST", body, chat(model, question(
            "Hi", (allowed / ".." / "elsewhere.png").as_uri())), 400, "file_not_allowed"),
        "an unknown model": ("POST", body, chat("gpt-4o", question("Hi")), 404, "model_not_found"),
        "temperature out of range": ("POST", body, {**chat(model, question("Hi")), "temperature": 9}, 400, None),
        "an unknown stream id": ("GET", "/v1/streams/s999", None, 404, "stream_not_found"),
        "a dead RTSP source": ("POST", "/v1/streams", {"source": "rtsp://127.0.0.1:9/none"}, 400,
                               "source_unavailable"),
        "an unknown source": ("POST", "/v1/streams", {"source": "nowhere://x"}, 400, "invalid_source"),
        "an unknown endpoint": ("GET", "/v1/nothing", None, 404, None),
    }


NAMES = list(bad_inputs("model", Path("/allowed")))


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_gets_a_4xx_openai_error_and_the_server_keeps_serving(name, server, client, model_id, allowed):
    method, path, body, status, code = bad_inputs(model_id, allowed)[name]
    headers = {"Content-Type": "application/json"}
    got, _, reply = server.request(method, path, body, headers=headers)
    assert got == status, reply
    assert set(reply) == {"error"} and set(reply["error"]) == {"message", "type", "param", "code"}
    assert reply["error"]["message"] and "Traceback" not in reply["error"]["message"]
    if code is not None:
        assert reply["error"]["code"] == code
    good = client.chat.completions.create(model=model_id, max_tokens=2, messages=question(
        "What colour is the circle?", data_url(png(RED_CIRCLE))))
    assert good.choices[0].message.content
