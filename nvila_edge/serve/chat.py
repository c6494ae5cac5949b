"""OpenAI chat-completion requests: parsed and validated into what the model needs, or a 400 naming the field.

NVILA answers one user turn: the prompt is the text of the last user message, the images are those of every
user message in order (several images make a multi-image question). System and earlier assistant turns
are accepted and not shown to the model. Fields the model has no use for (``user``, ``metadata``, ...)
are ignored, as OpenAI's own server does for unknown options.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nvila_edge.runtime.sampling import SamplingParams

from .errors import ApiError

ROLES = ("system", "developer", "user", "assistant", "tool")
MAX_STOPS = 4


@dataclass(frozen=True)
class GenerationDefaults:
    max_new_tokens: int
    temperature: float
    top_p: float
    context: int


@dataclass
class ChatRequest:
    model: str
    prompt: str
    image_urls: list[tuple[str, str]]  # (url, the request field it came from)
    params: SamplingParams
    stop: list[str] = field(default_factory=list)
    stream: bool = False
    include_usage: bool = False


def parse_chat(body: object, defaults: GenerationDefaults) -> ChatRequest:
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "'model' is required: use the id from GET /v1/models", param="model")
    prompt, image_urls = parse_messages(body.get("messages"))
    if body.get("n", 1) != 1:
        raise ApiError(400, "only n=1 is supported", param="n")
    if body.get("logprobs"):
        raise ApiError(400, "logprobs are not supported", param="logprobs")
    stream = _boolean(body, "stream", False)
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise ApiError(400, "'stream_options' must be an object", param="stream_options")
    params = SamplingParams(
        max_new_tokens=_max_tokens(body, defaults),
        temperature=_number(body, "temperature", defaults.temperature, 0.0, 2.0),
        top_p=_number(body, "top_p", defaults.top_p, 0.0, 1.0, open_low=True),
        seed=_seed(body),
    )
    return ChatRequest(model, prompt, image_urls, params, _stops(body.get("stop")), stream,
                       bool(options.get("include_usage", False)))


def parse_messages(messages: object) -> tuple[str, list[tuple[str, str]]]:
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty list of {role, content} objects", param="messages")
    prompt: str | None = None
    images: list[tuple[str, str]] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise ApiError(400, f"{where} must be an object with role and content", param=where)
        role = message.get("role")
        if role not in ROLES:
            raise ApiError(400, f"{where}.role must be one of {', '.join(ROLES)}", param=f"{where}.role")
        text, urls = parse_content(message.get("content"), f"{where}.content")
        if role == "user":
            prompt = text
            images += urls
        elif urls:
            raise ApiError(400, f"{where}: images belong in user messages", param=f"{where}.content")
    if prompt is None:
        raise ApiError(400, "'messages' holds no user message", param="messages")
    if not prompt.strip():
        raise ApiError(400, "the last user message has no text: ask a question", param="messages")
    return prompt, images


def parse_content(content: object, where: str) -> tuple[str, list[tuple[str, str]]]:
    """-> (text, image URLs); content is a string or a list of text / image_url parts."""
    if isinstance(content, str):
        return content, []
    if content is None:
        return "", []
    if not isinstance(content, list):
        raise ApiError(400, f"{where} must be a string or a list of content parts", param=where)
    texts, urls = [], []
    for j, part in enumerate(content):
        at = f"{where}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise ApiError(400, f"{at}.text must be a string", param=f"{at}.text")
            texts.append(part["text"])
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str):
                raise ApiError(400, f"{at}.image_url must be {{\"url\": \"data:...\"}}", param=f"{at}.image_url")
            urls.append((url, f"{at}.image_url.url"))
        else:
            raise ApiError(400, f"{at}: unknown content part type {kind!r}; use 'text' or 'image_url'",
                           param=f"{at}.type", code="unknown_content_type")
    return "\n".join(texts), urls


def _boolean(body: dict, name: str, default: bool) -> bool:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ApiError(400, f"'{name}' must be true or false", param=name)
    return value


def _number(body: dict, name: str, default: float, low: float, high: float, open_low: bool = False) -> float:
    value = body.get(name)
    if value is None:
        return default
    bad = isinstance(value, bool) or not isinstance(value, (int, float))
    if bad or value > high or value < low or (open_low and value <= low):
        bound = f"({low}, {high}]" if open_low else f"[{low}, {high}]"
        raise ApiError(400, f"'{name}' must be a number in {bound}, got {value!r}", param=name)
    return float(value)


def _max_tokens(body: dict, defaults: GenerationDefaults) -> int:
    name = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    value = body.get(name)
    if value is None:
        return defaults.max_new_tokens
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ApiError(400, f"'{name}' must be a positive integer, got {value!r}", param=name)
    if value >= defaults.context:
        raise ApiError(400, f"'{name}' = {value} does not fit the model's context of {defaults.context} positions",
                       param=name, code="context_length_exceeded")
    return value


def _seed(body: dict) -> int | None:
    value = body.get("seed")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ApiError(400, f"'seed' must be a non-negative integer, got {value!r}", param="seed")
    return value


def _stops(value: object) -> list[str]:
    if value is None:
        return []
    stops = [value] if isinstance(value, str) else value
    if (not isinstance(stops, list) or len(stops) > MAX_STOPS
            or not all(isinstance(s, str) and s for s in stops)):
        raise ApiError(400, f"'stop' must be a non-empty string or a list of at most {MAX_STOPS} of them",
                       param="stop")
    return stops
