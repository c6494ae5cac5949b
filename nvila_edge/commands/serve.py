from __future__ import annotations

import argparse
from pathlib import Path


class ServeCommand:
    """Serve the model over HTTP: an OpenAI-compatible chat API, live camera streams with scheduled prompts
    and debounced yes/no alerts, an events stream (SSE), Prometheus metrics and a web page at /.

    One model answers everything from one worker thread: chat first, then stream prompts and alerts
    round-robin across streams. Binds 127.0.0.1 by default; any other address needs an API key (--api-key or
    NVILA_EDGE_API_KEY), which every endpoint but /healthz then asks for as 'Authorization: Bearer KEY'.
    SIGTERM or Ctrl-C: the answer in progress finishes, streams close, then the server exits.

    examples:
      nvila-edge serve
      nvila-edge serve out/engines --port 8080 --allow-files /data/images
      NVILA_EDGE_API_KEY=secret nvila-edge serve out/engines --host 0.0.0.0 --log-json
      curl -s localhost:8000/v1/models
      curl -s localhost:8000/v1/streams -d '{"source": "test://shapes"}'
    """

    name = "serve"
    help = "HTTP service: OpenAI-compatible chat, live streams, alerts, events, metrics, web page"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        d = _defaults()
        parser.add_argument("model", nargs="?", default=d["model"], metavar="MODEL",
                            help="engines folder, export folder, checkpoint, or 'builtin' (default; exported and "
                                 "built for this machine on first use, then cached)")
        parser.add_argument("--host", default=d["host"], help="address to bind (default 127.0.0.1)")
        parser.add_argument("--port", type=int, default=d["port"], help="port (default 8000; 0 picks a free one)")
        parser.add_argument("--api-key", metavar="KEY",
                            help="require 'Authorization: Bearer KEY'; needed off loopback (default: "
                                 "$NVILA_EDGE_API_KEY, else no key)")
        parser.add_argument("--allow-files", type=Path, action="append", default=[], metavar="DIR",
                            help="let file:// image URLs read from DIR (repeatable; default: refused)")
        parser.add_argument("--threads", type=int, metavar="N", help="CPU threads for ONNX Runtime (default: all)")
        parser.add_argument("--max-body-mb", type=float, default=d["max_body_mb"], metavar="MB",
                            help=f"largest request body (default {d['max_body_mb']:g})")
        parser.add_argument("--max-image-mp", type=float, default=d["max_image_mp"], metavar="MP",
                            help=f"largest image in megapixels (default {d['max_image_mp']:g})")
        parser.add_argument("--max-images", type=int, default=d["max_images"], metavar="N",
                            help=f"images per chat request (default {d['max_images']})")
        parser.add_argument("--chat-queue", type=int, default=d["chat_queue"], metavar="N",
                            help=f"chat requests waiting before 429 (default {d['chat_queue']})")
        parser.add_argument("--chat-burst", type=int, default=d["chat_burst"], metavar="K",
                            help=f"chat answers in a row before a due stream prompt or alert gets a turn "
                                 f"(default {d['chat_burst']}; 0: chat always first)")
        parser.add_argument("--max-streams", type=int, default=d["max_streams"], metavar="N",
                            help=f"streams at once (default {d['max_streams']})")
        parser.add_argument("--max-frame-age", dest="max_frame_age_s", type=float, default=d["max_frame_age_s"],
                            metavar="S", help=f"drop stream work on frames older than S seconds (default "
                                              f"{d['max_frame_age_s']:g})")
        parser.add_argument("--scene-threshold", type=float, default=d["scene_threshold"], metavar="T",
                            help="mean grey-level change (0-255) that makes a prompt or alert ask again "
                                 f"(default {d['scene_threshold']:g}; 0 asks on every new frame)")
        parser.add_argument("--debounce", type=int, default=d["debounce"], metavar="K",
                            help=f"agreeing answers before an alert changes state (default {d['debounce']})")
        parser.add_argument("--event-buffer", type=int, default=d["event_buffer"], metavar="N",
                            help=f"events kept for clients that reconnect (default {d['event_buffer']})")
        parser.add_argument("--log-json", action="store_true", help="one JSON object per log line")

    def run(self, args: argparse.Namespace) -> int:
        from nvila_edge.errors import InputError
        from nvila_edge.serve.options import ServeOptions
        try:
            from nvila_edge.serve.server import serve
        except ImportError as err:
            from nvila_edge.errors import UnsupportedError

            raise UnsupportedError(f"serve needs the serve extra ({err.name} is missing): pip install "
                                   "'nvila-edge[serve]'") from None
        for name, low in (("port", 0), ("max_images", 1), ("chat_queue", 1), ("max_streams", 1), ("debounce", 1),
                          ("event_buffer", 1)):
            if getattr(args, name) < low:
                raise InputError(f"--{name.replace('_', '-')} must be at least {low}, got {getattr(args, name)}")
        for name in ("max_body_mb", "max_image_mp", "max_frame_age_s"):
            if getattr(args, name) <= 0:
                raise InputError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
        if args.chat_burst < 0:
            raise InputError(f"--chat-burst must be 0 (chat always first) or positive, got {args.chat_burst}")
        if args.scene_threshold < 0:
            raise InputError(f"--scene-threshold must be 0 (off) or positive, got {args.scene_threshold}")
        fields = set(ServeOptions.__dataclass_fields__)
        options = ServeOptions(**{k: v for k, v in vars(args).items() if k in fields})
        return serve(options, debug=args.debug)


def _defaults() -> dict:
    from nvila_edge.serve.options import ServeOptions

    return {name: f.default for name, f in ServeOptions.__dataclass_fields__.items()}
