"""The PyTorch reference pipeline: the ground truth every exported graph and engine is compared with.

Tiling, prompt building, splicing, sampling and the token loop are the runtime's own code (numpy), so the
reference and the runtime differ only in what computes the three graphs.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from nvila_edge.export.checkpoint import LoadedCheckpoint
from nvila_edge.export.modeling.nvila import NvilaModel
from nvila_edge.runtime.evaluation import example_request
from nvila_edge.runtime.generation import Timings, generate
from nvila_edge.runtime.request import PreparedPrompt, Request, check_fits, inputs_embeds, media_kind, prepare
from nvila_edge.runtime.sampling import SamplingParams
from nvila_edge.runtime.tiling import ImageTiles
from nvila_edge.runtime.tokenizer import stream_text


class TorchEncoder:
    def __init__(self, model: NvilaModel):
        self.model = model

    @torch.inference_mode()
    def encode_image(self, tiles: ImageTiles) -> list[np.ndarray]:
        return [b.float().numpy() for b in self.model.encode_image(tiles)]

    @torch.inference_mode()
    def encode_frames(self, frames: list[ImageTiles]) -> list[np.ndarray]:
        return [b.float().numpy() for b in self.model.encode_frames(frames)]


class TorchDecoder:
    """Batch-1 decoding with a growing (concatenated) KV cache."""

    def __init__(self, model: NvilaModel, context: int):
        self.llm = model.llm
        self.context = context
        self.reset()

    def reset(self) -> None:
        self.past = self.llm.empty_cache()
        self.length = 0

    @torch.inference_mode()
    def step(self, inputs_embeds: np.ndarray) -> np.ndarray:
        s = len(inputs_embeds)
        x = torch.from_numpy(np.ascontiguousarray(inputs_embeds))[None]
        positions = torch.arange(self.length, self.length + s)[None]
        mask = torch.ones(1, self.length + s, dtype=torch.int64)
        logits, new = self.llm(x, positions, mask, self.past)
        self.past = [(torch.cat((pk, k), 1), torch.cat((pv, v), 1)) for (pk, pv), (k, v) in zip(self.past, new)]
        self.length += s
        return logits[0, -1].float().numpy()


class ReferencePipeline:
    def __init__(self, checkpoint: LoadedCheckpoint):
        self.config = checkpoint.config
        self.model = checkpoint.model
        self.tokenizer = checkpoint.tokenizer
        self.embed_table = self.model.llm.model.embed_tokens.weight.detach().float().numpy()
        self.encoder = TorchEncoder(self.model)
        self.decoder = TorchDecoder(self.model, self.config.model_max_length)

    def prepare(self, request: Request) -> PreparedPrompt:
        newline = self.embed_table[self.tokenizer.newline_id][None]
        return prepare(self.config, self.tokenizer, self.encoder, newline, request)

    def generate(self, request: Request, params: SamplingParams = SamplingParams(),
                 timings: Timings | None = None) -> Iterator[int]:
        """Yield generated token ids (stop token excluded); afterwards ``self.last_tokens`` holds them."""
        prepared = self.prepare(request)
        check_fits(prepared, self.decoder.context, media_kind(request))
        embeds = inputs_embeds(prepared, self.tokenizer, self.embed_table)
        self.last_tokens: list[int] = []
        for token in generate(self.decoder, embeds, lambda t: self.embed_table[t][None], params,
                              set(self.tokenizer.eos_token_ids), timings):
            self.last_tokens.append(token)
            yield token

    def stream(self, request: Request, params: SamplingParams = SamplingParams()) -> Iterator[str]:
        """Text pieces as tokens arrive, exactly as the runtime's ``Pipeline.stream`` yields them."""
        yield from stream_text(self.generate(request, params), self.tokenizer)

    def ask(self, request: Request, params: SamplingParams = SamplingParams()) -> str:
        return self.tokenizer.decode(list(self.generate(request, params)))

    def answer_example(self, example) -> str:
        """Greedy answer to a synthetic-world example (the evaluation suite's question)."""
        return self.ask(example_request(example), SamplingParams(max_new_tokens=32))

