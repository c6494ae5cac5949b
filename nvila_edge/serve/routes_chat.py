"""``GET /v1/models`` and ``POST /v1/chat/completions`` (a JSON answer, or OpenAI chunks over SSE ending with
``data: [DONE]``)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from sse_starlette import EventSourceResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request as HttpRequest
from starlette.responses import JSONResponse
from starlette.routing import Route

from nvila_edge.runtime.pipeline import Answer
from nvila_edge.runtime.request import Request

from .chat import ChatRequest, parse_chat
from .errors import ApiError, error_body
from .images import decode_image_url
from .service import CLOSE_GRACE_S, Service
from .worker import ChatJob, Failed, Finished, TextPiece


async def read_json(request: HttpRequest) -> object:
    body = await request.body()
    if not body:
        raise ApiError(400, "the request body is empty: send a JSON object", code="invalid_json")
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ApiError(400, f"the request body is not valid JSON ({err})", code="invalid_json") from None


async def list_models(request: HttpRequest) -> JSONResponse:
    service: Service = request.app.state.service
    model = {"id": service.model_id, "object": "model", "created": int(service.started), "owned_by": "nvila-edge"}
    return JSONResponse({"object": "list", "data": [model]})


def usage(answer: Answer) -> dict:
    completion = len(answer.token_ids)
    return {"prompt_tokens": answer.prompt_positions, "completion_tokens": completion,
            "total_tokens": answer.prompt_positions + completion, "visual_tokens": answer.visual_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "image_tokens": answer.visual_tokens}}


async def chat_completions(request: HttpRequest):
    service: Service = request.app.state.service
    chat = parse_chat(await read_json(request), service.defaults())
    service.check_model(chat.model)
    if len(chat.image_urls) > service.options.max_images:
        raise ApiError(400, f"{len(chat.image_urls)} images in one request; at most {service.options.max_images}",
                       param="messages", code="too_many_images")
    images = await run_in_threadpool(lambda: [decode_image_url(url, service.images, where)
                                              for url, where in chat.image_urls])
    job = ChatJob(Request(chat.prompt, images=images), chat.params, chat.stop, asyncio.get_running_loop())
    service.worker.submit(job)
    try:
        first = await job.results.get()  # the prompt is checked against the context before any token
    except BaseException:
        job.cancelled.set()
        raise
    if isinstance(first, Failed):
        raise first.error
    reply = Reply(f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time()), service.model_id)
    if chat.stream:
        # at shutdown an answer being streamed may finish (within uvicorn's own graceful-shutdown time)
        return EventSourceResponse(reply.chunks(job, first, chat), sep="\n", ping=15,
                                   shutdown_grace_period=CLOSE_GRACE_S)
    return JSONResponse(await reply.whole(job, first))


class Reply:
    def __init__(self, completion_id: str, created: int, model: str):
        self.id, self.created, self.model = completion_id, created, model

    async def whole(self, job: ChatJob, item) -> dict:
        texts = []
        try:
            while not isinstance(item, Finished):
                if isinstance(item, Failed):
                    raise item.error
                texts.append(item.text)
                item = await job.results.get()
        finally:
            job.cancelled.set()
        message = {"role": "assistant", "content": "".join(texts)}
        return {"id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "message": message, "finish_reason": item.finish_reason,
                             "logprobs": None}],
                "usage": usage(item.answer)}

    def chunk(self, delta: dict, finish_reason: str | None = None) -> dict:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]}

    async def chunks(self, job: ChatJob, item, chat: ChatRequest):
        try:
            yield json.dumps(self.chunk({"role": "assistant", "content": ""}))
            while isinstance(item, TextPiece):
                yield json.dumps(self.chunk({"content": item.text}))
                item = await job.results.get()
            if isinstance(item, Failed):
                yield json.dumps(item.error.body())
                return
            yield json.dumps(self.chunk({}, item.finish_reason))
            if chat.include_usage:
                yield json.dumps({**self.chunk({}), "choices": [], "usage": usage(item.answer)})
            yield "[DONE]"
        except Exception:  # never a traceback to the client; the log has it
            yield json.dumps(error_body(500, "internal server error (logged on the server)"))
            raise
        finally:
            job.cancelled.set()


ROUTES = [
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
]
