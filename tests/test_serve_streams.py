"""``nvila-edge serve`` streams: real sources captured by a real server process, prompts and alerts answered by
the built-in model, the events stream with Last-Event-ID replay, scheduling, metrics and shutdown."""

from __future__ import annotations

import concurrent.futures
import shutil
import time

import cv2
import numpy as np
import openai
import pytest
from served import EventReader, ServerProcess
from test_serve_chat import RED_CIRCLE, data_url, png, question

from nvila_edge.runtime.world.clip import random_clip

EVENT_BUFFER = 50  # small, so the tests outrun it
STILL = "test://shapes?width=320&height=240&fps=10&speed=0&scene_seconds=0&seed={seed}"


def shapes_in(seed: int) -> list:
    return random_clip(np.random.default_rng(seed), width=320, height=240).shapes


@pytest.fixture(scope="module")
def server(builtin_engines):
    process = ServerProcess(builtin_engines, "--chat-queue", "1", "--event-buffer", str(EVENT_BUFFER)).start()
    yield process
    assert process.stop() == 0, process.log()
    assert "Traceback" not in process.log() and "stopped: streams closed" in process.log()


def add_stream(server: ServerProcess, source: str, name: str | None = None) -> dict:
    status, _, stream = server.post("/v1/streams", {"source": source, **({"name": name} if name else {})})
    assert status == 201, stream
    return stream


def wait_until(check, timeout: float = 60.0, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"not reached within {timeout} s")


def test_an_alert_reaches_its_state_and_the_change_arrives_on_the_events(server):
    events = EventReader(server)
    shape = shapes_in(3)[0]
    stream = add_stream(server, STILL.format(seed=3), name="door")
    assert stream["state"] == "live" and stream["name"] == "door" and stream["source"] == "test://shapes"
    status, _, alert = server.post(f"/v1/streams/{stream['id']}/alerts",
                                   {"prompt": f"Is there a {shape.color} {shape.kind}?"})
    assert status == 201 and alert["state"] == "unknown" and alert["debounce"] == 2
    change = events.wait_for(lambda e: e["type"] == "alert" and e["alert_id"] == alert["id"])
    assert (change["stream_id"], change["state"], change["previous"]) == (stream["id"], "true", "unknown")
    latest = server.get(f"/v1/streams/{stream['id']}/latest")[2]
    (entry,) = latest["alerts"]
    assert entry["state"] == "true" and entry["answers"] >= 2 and entry["answer"] == "yes"
    assert 0 <= entry["age_s"] < 30 and entry["frame_time"] <= time.time()
    assert latest["prompts"] == []
    # the frame does not change: once settled, the gate skips re-asking
    wait_until(lambda: server.get(f"/v1/streams/{stream['id']}/alerts")[2]["data"][0]["gate_skips"] > 0)
    events.close()
    assert server.request("DELETE", f"/v1/streams/{stream['id']}")[0] == 200


def test_a_client_reconnecting_with_last_event_id_loses_nothing(server):
    first = EventReader(server)
    stream = add_stream(server, "test://shapes?width=320&height=240&fps=10")
    status, _, prompt = server.post(f"/v1/streams/{stream['id']}/prompts",
                                    {"prompt": "Describe the image.", "every_s": 0.2})
    assert status == 201
    first.wait_for(lambda e: e["type"] == "answer" and e["prompt_id"] == prompt["id"])
    resume_after = first.ids[0]
    first.close()  # the client goes away while answers keep coming
    time.sleep(1.0)
    second = EventReader(server, last_event_id=resume_after)
    wait_until(lambda: len(second.ids) >= 5)
    ids = second.ids[:5]
    assert ids == list(range(resume_after + 1, resume_after + 6))  # every id after the one it had, none missing
    seen_by_both = [e for e in first.events if e["id"] > resume_after]
    assert second.events[:len(seen_by_both)] == seen_by_both  # the same events, replayed
    answers = [e for e in second.events if e["type"] == "answer"]
    assert answers and all(e["answer"] for e in answers)
    second.close()
    server.request("DELETE", f"/v1/streams/{stream['id']}")


def test_streams_are_listed_shown_previewed_and_deleted(server):
    events = EventReader(server)
    stream = add_stream(server, STILL.format(seed=5))
    sid = stream["id"]
    assert sid in [s["id"] for s in server.get("/v1/streams")[2]["data"]]
    shown = server.get(f"/v1/streams/{sid}")[2]
    assert shown["state"] == "live" and shown["frames_captured"] >= 1
    status, head, jpeg = server.get(f"/v1/streams/{sid}/frame.jpg")
    assert status == 200 and head["content-type"] == "image/jpeg"
    assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (240, 320, 3)
    parts = mjpeg_parts(server, sid, count=2)
    raw = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).astype(int)
    for part in parts:
        image = cv2.imdecode(np.frombuffer(part, np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (240, 320, 3)
        bottom = slice(200, 240)
        assert np.abs(image[bottom].astype(int) - raw[bottom]).mean() > 10  # the answer band darkens the picture
    assert server.request("DELETE", f"/v1/streams/{sid}")[0] == 200
    assert server.get(f"/v1/streams/{sid}")[0] == 404
    gone = events.wait_for(lambda e: e["type"] == "stream" and e["stream_id"] == sid and e["state"] == "ended")
    assert gone["detail"] == "deleted"
    events.close()


def mjpeg_parts(server: ServerProcess, sid: str, count: int) -> list[bytes]:
    import urllib.request

    parts, buffer = [], b""
    with urllib.request.urlopen(f"{server.url}/v1/streams/{sid}/preview.mjpg?fps=10", timeout=30) as response:
        assert response.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        while len(parts) < count:
            buffer += response.read1(65536)
            while b"\r\n\r\n" in buffer:
                head, rest = buffer.split(b"\r\n\r\n", 1)
                length = int(next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length"))
                             .split(b":")[1])
                if len(rest) < length:
                    break
                parts.append(rest[:length])
                buffer = rest[length + 2:]
    return parts


def test_prompts_answer_on_schedule_over_frames_and_can_be_deleted(server):
    stream = add_stream(server, "test://shapes?width=320&height=240&fps=10")
    sid = stream["id"]
    status, _, still = server.post(f"/v1/streams/{sid}/prompts", {"prompt": "Describe the image.", "every_s": 0.5})
    status2, _, video = server.post(f"/v1/streams/{sid}/prompts", {"prompt": "Which way does the red circle move?",
                                                                   "every_s": 1, "frames": 4, "fps": 2})
    assert (status, status2) == (201, 201) and video["frames"] == 4
    prompts = wait_until(lambda: all(p["answers"] >= 2 for p in server.get(f"/v1/streams/{sid}/prompts")[2]["data"])
                         and server.get(f"/v1/streams/{sid}/prompts")[2]["data"])
    for p in prompts:
        assert p["answer"] and p["answered_at"] >= p["frame_time"]
    assert server.request("DELETE", f"/v1/streams/{sid}/prompts/{still['id']}")[0] == 200
    assert [p["id"] for p in server.get(f"/v1/streams/{sid}/prompts")[2]["data"]] == [video["id"]]
    assert server.request("DELETE", f"/v1/streams/{sid}/prompts/{still['id']}")[0] == 404
    assert server.request("DELETE", f"/v1/streams/{sid}/alerts/{video['id']}")[0] == 404  # a prompt, not an alert
    for bad in ({"prompt": ""}, {"prompt": "x", "every_s": -1}, {"prompt": "x", "frames": 99}, {"every_s": 1}):
        status, _, reply = server.post(f"/v1/streams/{sid}/prompts", bad)
        assert status == 400 and reply["error"]["param"] in ("prompt", "every_s", "frames")
    server.request("DELETE", f"/v1/streams/{sid}")


def test_a_file_source_ends_and_the_server_keeps_serving(server, tmp_path):
    video = tmp_path / "short.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (160, 120))
    for i in range(10):
        writer.write(np.full((120, 160, 3), 20 * i, np.uint8))
    writer.release()
    stream = add_stream(server, str(video))
    wait_until(lambda: server.get(f"/v1/streams/{stream['id']}")[2]["state"] == "ended")
    assert server.get("/healthz")[0] == 200 and server.get("/readyz")[2]["ready"]
    server.request("DELETE", f"/v1/streams/{stream['id']}")


@pytest.mark.skipif(shutil.which("gst-launch-1.0") is None, reason="gst-launch-1.0 not installed")
def test_a_live_source_that_drops_reconnects(server):
    events = EventReader(server)
    stream = add_stream(server, "videotestsrc num-buffers=5 ! video/x-raw,width=160,height=120 ! videoconvert "
                                "! appsink")

    def mine(state):
        return lambda e: e["type"] == "stream" and e["stream_id"] == stream["id"] and e["state"] == state

    lost = events.wait_for(mine("reconnecting"))
    back = events.wait_for(lambda e: mine("live")(e) and e["id"] > lost["id"])
    assert "attempt 1" in lost["detail"] and back["detail"] == ""
    shown = wait_until(lambda: (s := server.get(f"/v1/streams/{stream['id']}")[2])["reconnects"] >= 1 and s)
    assert shown["last_error"]
    events.close()
    server.request("DELETE", f"/v1/streams/{stream['id']}")


def test_a_full_chat_queue_answers_429_with_retry_after(server):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    model = client.models.list().data[0].id
    many = question("Describe the image.", *[data_url(png(RED_CIRCLE))] * 12)

    def ask():
        try:
            return client.chat.completions.create(model=model, messages=many, max_tokens=24)
        except openai.RateLimitError as err:
            return err

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: ask(), range(8)))
    refused = [r for r in results if isinstance(r, openai.RateLimitError)]
    assert refused and len(refused) < len(results)
    assert all(int(r.response.headers["retry-after"]) >= 1 for r in refused)
    assert all(r.body["code"] == "queue_full" for r in refused)
    assert client.chat.completions.create(model=model, messages=many, max_tokens=2).choices[0].message.content


def test_metrics_cover_requests_answers_streams_and_alerts(server):
    shape = shapes_in(4)[0]
    sid = add_stream(server, STILL.format(seed=4))["id"]
    server.post(f"/v1/streams/{sid}/alerts", {"prompt": f"Is there a {shape.color} {shape.kind}?"})
    wait_until(lambda: server.get(f"/v1/streams/{sid}/alerts")[2]["data"][0]["gate_skips"] > 0)
    assert server.request("BREW", "/v1/streams")[0] == 405
    status, head, text = server.get("/metrics")
    assert status == 200 and head["content-type"].startswith("text/plain")
    text = text.decode()
    alert_id = server.get(f"/v1/streams/{sid}/alerts")[2]["data"][0]["id"]
    for line in (f'nvila_edge_alert_state{{alert="{alert_id}",stream="{sid}"}} 1.0',
                 'nvila_edge_http_requests_total{endpoint="/v1/streams",method="POST",status="201"}',
                 'nvila_edge_http_requests_total{endpoint="/v1/streams/{id}/alerts",method="GET",status="200"}',
                 'nvila_edge_http_requests_total{endpoint="/v1/streams",method="other",status="405"}',
                 f'nvila_edge_stream_live{{stream="{sid}"}} 1.0', "nvila_edge_chat_queue_depth 0.0",
                 'nvila_edge_ttft_seconds_count{kind="alert"}'):
        assert line in text, line
    value = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines() if not line.startswith("#")}
    assert value[f'nvila_edge_gate_skips_total{{stream="{sid}"}}'] > 0
    assert value[f'nvila_edge_stream_fps{{stream="{sid}"}}'] > 0
    assert 0 <= value[f'nvila_edge_stream_frame_age_seconds{{stream="{sid}"}}'] < 5
    server.request("DELETE", f"/v1/streams/{sid}")
    assert f'stream="{sid}"' not in server.get("/metrics")[2].decode()  # deleted streams leave no series


def test_a_client_asking_for_events_no_longer_kept_is_told(server):
    assert server.get("/metrics")[0] == 200
    sid = add_stream(server, "test://shapes?width=320&height=240&fps=10")["id"]
    server.post(f"/v1/streams/{sid}/prompts", {"prompt": "Describe the image.", "every_s": 0})
    probe = EventReader(server)
    wait_until(lambda: probe.ids and probe.ids[-1] > EVENT_BUFFER + 5)
    probe.close()
    late = EventReader(server, last_event_id=1)
    notice = late.wait_for(lambda e: True)
    assert notice["type"] == "events_lost" and notice["lost"] >= 5
    kept = late.wait_for(lambda e: e["type"] != "events_lost")
    assert kept["id"] == notice["oldest_available"] == notice["id"] + 1 == notice["lost"] + 2
    late.close()
    server.request("DELETE", f"/v1/streams/{sid}")
