"""Images in chat requests: ``data:`` URLs (base64 JPEG/PNG/WebP) and ``file://`` paths inside the folders
given with ``--allow-files``. Remote URLs are refused: the device never fetches from the network.

The pixel limit is checked from the image header before anything is decoded.
"""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
from PIL import Image

from nvila_edge.errors import InputError
from nvila_edge.runtime.image import load_image

from .errors import ApiError

FORMATS = {"JPEG", "PNG", "WEBP"}


@dataclass(frozen=True)
class ImagePolicy:
    max_pixels: int
    max_bytes: int
    allow_files: tuple[Path, ...] = ()


def decode_image_url(url: str, policy: ImagePolicy, param: str) -> np.ndarray:
    """An image URL from a request -> RGB uint8 [H, W, 3]; ApiError (400/413) naming ``param`` otherwise."""
    if not isinstance(url, str) or not url:
        raise ApiError(400, "image_url.url must be a non-empty string", param=param)
    scheme = url.split(":", 1)[0].lower()
    if scheme == "data":
        data = _data_url_bytes(url, param)
    elif scheme == "file":
        data = _file_bytes(url, policy, param)
    elif scheme in ("http", "https"):
        raise ApiError(400, "remote image URLs are not fetched (the device makes no network requests): send the "
                            "image inline as a data:image/jpeg;base64,... URL", param=param, code="remote_url")
    else:
        raise ApiError(400, f"unsupported image URL scheme {scheme!r}: use a data: URL (base64 JPEG, PNG or WebP)",
                       param=param, code="invalid_image_url")
    return _decode(data, policy, param)


def _data_url_bytes(url: str, param: str) -> bytes:
    header, comma, payload = url.partition(",")
    if not comma or not header.lower().endswith(";base64"):
        raise ApiError(400, "a data: image URL must be base64: data:image/png;base64,<data>", param=param,
                       code="invalid_image_url")
    try:
        return base64.b64decode(payload.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "the data: URL's payload is not valid base64", param=param,
                       code="invalid_base64") from None


def _file_bytes(url: str, policy: ImagePolicy, param: str) -> bytes:
    parsed = urlparse(url)
    if parsed.netloc not in ("", "localhost"):
        raise ApiError(400, f"file:// URLs name local paths only, not host {parsed.netloc!r}", param=param,
                       code="invalid_image_url")
    path = Path(unquote(parsed.path)).resolve()
    if not any(path.is_relative_to(folder) for folder in policy.allow_files):
        allowed = ", ".join(str(f) for f in policy.allow_files) or "none (start the server with --allow-files DIR)"
        raise ApiError(400, f"file:// images must lie inside an allowed folder; allowed: {allowed}", param=param,
                       code="file_not_allowed")
    if not path.is_file():
        raise ApiError(400, f"no such image file: {path}", param=param, code="file_not_found")
    if path.stat().st_size > policy.max_bytes:
        raise ApiError(413, f"{path} is larger than {policy.max_bytes / 2**20:.0f} MB", param=param,
                       code="image_too_large")
    return path.read_bytes()


def _decode(data: bytes, policy: ImagePolicy, param: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as header:  # reads the header only
            kind, (width, height) = header.format, header.size
    except Image.DecompressionBombError:  # Pillow's own limit, far above ours
        raise ApiError(413, f"the image is over the {policy.max_pixels / 1e6:.0f} MP limit; downscale it first",
                       param=param, code="image_too_large") from None
    except (Image.UnidentifiedImageError, OSError, ValueError):
        raise ApiError(400, "the bytes are not a JPEG, PNG or WebP image", param=param,
                       code="invalid_image") from None
    if kind not in FORMATS:
        raise ApiError(400, f"{kind} images are not accepted: send JPEG, PNG or WebP", param=param,
                       code="invalid_image")
    if width * height > policy.max_pixels:
        raise ApiError(413, f"the image is {width}x{height} = {width * height / 1e6:.1f} MP, over the "
                            f"{policy.max_pixels / 1e6:.0f} MP limit; downscale it first", param=param,
                       code="image_too_large")
    try:
        return load_image(data)
    except InputError as err:
        raise ApiError(400, f"the image cannot be decoded: {err}", param=param, code="invalid_image") from None
