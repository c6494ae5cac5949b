"""Train the built-in model from scratch on the synthetic shapes world (2 CPU cores, under an hour)."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from nvila_edge.errors import InputError
from nvila_edge.export.builtin_tokenizer import save_tokenizer, train_tokenizer
from nvila_edge.export.checkpoint import LoadedCheckpoint
from nvila_edge.export.checkpoint_writer import random_tensors, write_checkpoint
from nvila_edge.export.modeling.nvila import NvilaModel
from nvila_edge.export.reference import ReferencePipeline
from nvila_edge.export.train.batches import (
    IGNORE,
    Sample,
    answer_starts,
    attention_masks,
    make_sample,
    pack,
    packed_bias,
    prefix_labels,
    sample_tiles,
    segment_layout,
    vision_batch,
)
from nvila_edge.export.train.builtin_config import VOCAB, builtin_files
from nvila_edge.export.train.conversations import conversation_stream
from nvila_edge.export.train.question_probe import HEADS, SLOTS
from nvila_edge.export.train.region_labels import COLOR_CLASSES, KIND_CLASSES
from nvila_edge.export.train.settings import TrainSettings
from nvila_edge.export.train.vision_pretraining import pretrain_vision
from nvila_edge.runtime.config import NvilaConfig
from nvila_edge.runtime.evaluation import evaluate
from nvila_edge.runtime.progress import progress_bar
from nvila_edge.runtime.request import media_blocks
from nvila_edge.runtime.splice import media_item, splice
from nvila_edge.runtime.tokenizer import Tokenizer
from nvila_edge.runtime.world.questions import example_stream

AUX_WEIGHT = 0.5  # weight of the per-token region loss next to the answer loss
POSITION_WEIGHT = 4.0  # the position probe's squared error (in image fractions) is small next to cross-entropy
INIT_STD = 0.02  # as Qwen2 and SigLIP are initialised; PyTorch's N(0, 1) embeddings swamp the residual stream
TRAIN_SEED = 1
TOKENIZER_SEED = 2
EVAL_SEED = 3  # the accepted accuracy is measured on other seeds, never used here


def build_tokenizer(dest: Path) -> Tokenizer:
    stream = example_stream(TOKENIZER_SEED)
    texts = []
    for _ in range(3000):
        example = next(stream)
        texts.extend((example.question, example.answer))
    save_tokenizer(train_tokenizer(texts, vocab_size=VOCAB), dest, model_max_length=1024)
    return Tokenizer.from_dir(dest)


class FeatureEncoder:
    """MediaEncoder over features already computed in the batch's single ViT pass (keeps gradients)."""

    def __init__(self, model: NvilaModel, features: torch.Tensor):
        self.model, self.features = model, features

    def encode_image(self, tiles):
        return self.model.project_image(tiles, self.features)

    def encode_frames(self, frames):
        return self.model.project_frames(frames, self.features)


class RegionHeads(torch.nn.Module):
    """Training-only probes: under each visual token shape kind, colour, position (see region_labels); at
    each question, the centres its answer depends on (see question_probe)."""

    def __init__(self, hidden: int):
        super().__init__()
        self.kind = torch.nn.Linear(hidden, KIND_CLASSES)
        self.color = torch.nn.Linear(hidden, COLOR_CLASSES)
        self.position = torch.nn.Linear(hidden, 2)
        self.question = torch.nn.Linear(hidden, 2 * SLOTS)

    def loss(self, blocks: list[torch.Tensor], sample: Sample) -> torch.Tensor:
        tokens = torch.cat(blocks)
        target = torch.from_numpy(np.concatenate(sample.region_labels))
        centres = torch.from_numpy(np.concatenate(sample.token_centres))
        return (F.cross_entropy(self.kind(tokens), target[:, 0]) + F.cross_entropy(self.color(tokens), target[:, 1])
                + POSITION_WEIGHT * F.mse_loss(self.position(tokens), centres))

    def question_loss(self, hidden: torch.Tensor, targets: torch.Tensor, samples: list[Sample]) -> torch.Tensor:
        """hidden [B, L, H] (one decoder layer's output), targets [B, L]: squared error of the probe where each
        segment's answer starts. The residual stream is RMS-normalised without a weight, so the probe cannot
        lean on the model's own norm scales."""
        hidden = hidden * torch.rsqrt(hidden.pow(2).mean(-1, keepdim=True) + 1e-6)
        goal = torch.from_numpy(np.concatenate([s.probe_targets for s in samples]))  # [questions, 2 * SLOTS]
        rows = hidden[answer_starts(targets)]  # [questions, H], batch then segment order like goal
        if len(rows) != len(goal):
            raise ValueError(f"{len(rows)} answers in the batch but {len(goal)} probe targets")
        seen = ~goal.isnan()
        if not seen.any():
            return hidden.new_zeros(())
        return F.mse_loss(self.question(rows)[seen], goal[seen])


def sequence(model: NvilaModel, tokenizer: Tokenizer, sample: Sample, features: torch.Tensor,
             with_masks: bool = False):
    """One sample -> (inputs_embeds [L, H], positions [L], segment ids [L], targets [L], its visual blocks,
    attention masks [turns, HEADS, L prefix], or None unless asked for and the sample has region labels)."""
    table = model.llm.model.embed_tokens.weight
    newline = table[tokenizer.newline_id][None]
    blocks, media, lite_tiles = media_blocks(model.config, FeatureEncoder(model, features), sample.media)
    items = [media_item(group, newline, torch.cat) for group in blocks]
    packed = pack(tokenizer, sample, media, lite_tiles)
    media_ids = {tokenizer.image_token_id, tokenizer.video_token_id}
    prefix = splice(packed.prefix, media_ids, table, items, torch.cat)
    embeds = torch.cat([prefix, *(table[torch.tensor(ids)] for ids in packed.segments)])
    positions, segment_ids, targets = segment_layout(len(prefix), packed)
    masks = None
    if with_masks and sample.region_labels is not None:
        labels = iter(np.column_stack(pair) for pair in zip(sample.region_labels, sample.token_centres))
        groups = [[next(labels) for _ in group] for group in blocks]
        masks = attention_masks(prefix_labels(packed.prefix, media_ids, groups), sample.attention_targets)
    return embeds, positions, segment_ids, targets, [b for group in blocks for b in group], masks


def attention_loss(weights: torch.Tensor, targets: torch.Tensor, masks: list[np.ndarray | None]) -> torch.Tensor:
    """weights [B, heads, L, L] of the question layer, targets [B, L], per-sample masks [turns, HEADS, P]:
    mean negative log of the attention mass each supervised head puts on its target tokens, read where each
    segment's answer starts."""
    starts = answer_starts(targets)
    length = weights.shape[-1]
    rows, goals = [], []
    for b, mask in enumerate(masks):
        if mask is None:
            continue
        rows.append(weights[b, :HEADS].transpose(0, 1)[starts[b]])  # [turns, HEADS, L]
        goals.append(torch.from_numpy(np.pad(mask, ((0, 0), (0, 0), (0, length - mask.shape[-1])))))
    if not rows:
        return weights.new_zeros(())
    mass = (torch.cat(rows) * torch.cat(goals)).sum(-1)
    seen = torch.cat(goals).any(-1)
    if not seen.any():
        return weights.new_zeros(())
    return -torch.log(mass[seen] + 1e-6).mean()


def pad_stack(rows: list[torch.Tensor], length: int, value: float = 0) -> torch.Tensor:
    pad = [0, 0] * (rows[0].dim() - 1)
    return torch.stack([F.pad(r, (*pad, 0, length - len(r)), value=value) for r in rows])


@contextlib.contextmanager
def layer_outputs(layer: torch.nn.Module) -> Iterator[dict]:
    """While the block runs, collects what a decoder layer returns ("hidden" [B, L, H]) and the inputs of its
    attention ("attention_inputs"), from which attention_weights computes the weights again when needed."""
    outputs: dict = {}

    def keep_hidden(module, args, out):
        outputs["hidden"] = out[0]

    def keep_attention(module, args, out):
        outputs["attention_inputs"] = args[:5]

    hooks = [layer.register_forward_hook(keep_hidden), layer.self_attn.register_forward_hook(keep_attention)]
    try:
        yield outputs
    finally:
        for hook in hooks:
            hook.remove()


def loss_on_batch(model: NvilaModel, heads: RegionHeads, tokenizer: Tokenizer, samples: list[Sample],
                  question_weight: float = TrainSettings.question_weight,
                  question_layer: int = TrainSettings.question_layer,
                  attention_weight: float = TrainSettings.attention_weight) -> torch.Tensor:
    features = model.vision_tower(vision_batch(samples))  # [T_total, g*g, D]
    seqs, region_losses, masks, offset = [], [], [], 0
    for sample in samples:
        n = sample_tiles(sample)
        *seq, blocks, mask = sequence(model, tokenizer, sample, features[offset:offset + n],
                                        with_masks=bool(attention_weight))
        masks.append(mask)
        seqs.append(seq)
        if sample.region_labels is not None:
            region_losses.append(heads.loss(blocks, sample))
        offset += n
    lengths = [len(s[0]) for s in seqs]
    length = max(lengths)
    embeds, positions, segment_ids = (pad_stack([s[i] for s in seqs], length) for i in range(3))  # [B, L, ...]
    targets = pad_stack([s[3] for s in seqs], length, IGNORE)
    llm = model.llm
    layer = llm.model.layers[question_layer]
    with layer_outputs(layer) as probed:
        hidden, _ = llm.hidden_states(embeds, positions, None, llm.empty_cache(len(seqs)),
                                      bias=packed_bias(segment_ids, lengths))
    logits = F.linear(hidden, llm.lm_head.weight)
    loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE)
    if region_losses:
        loss = loss + AUX_WEIGHT * torch.stack(region_losses).mean()
    if question_weight:
        loss = loss + question_weight * heads.question_loss(probed["hidden"], targets, samples)
    if attention_weight:
        weights, _ = layer.self_attn.attention_weights(*probed["attention_inputs"])  # [B, heads, L, L]
        loss = loss + attention_weight * attention_loss(weights, targets, masks)
    return loss


def init_weights(model: NvilaModel) -> None:
    for module in model.modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.Embedding)):
            torch.nn.init.normal_(module.weight, std=INIT_STD)
            if getattr(module, "bias", None) is not None:
                torch.nn.init.zeros_(module.bias)


def learning_rate(settings: TrainSettings, step: int) -> float:
    if step < settings.warmup:
        return settings.lr * (step + 1) / settings.warmup
    progress = (step - settings.warmup) / max(1, settings.steps - settings.warmup)
    return settings.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def quick_eval(model: NvilaModel, config: NvilaConfig, tokenizer: Tokenizer, n: int) -> dict:
    model.eval()
    pipeline = ReferencePipeline(LoadedCheckpoint(Path("."), config, model, tokenizer))
    result = evaluate(pipeline.answer_example, n=n, seed=EVAL_SEED)
    model.train()
    return result


def train_builtin(out: Path, settings: TrainSettings, work_dir: Path) -> dict:
    torch.manual_seed(settings.seed)
    torch.set_num_threads(settings.threads)
    files = builtin_files(settings.variant)
    config = NvilaConfig.from_files(files)
    if not 0 <= settings.question_layer < config.llm.num_hidden_layers:
        raise InputError(f"the question probe's layer must be 0..{config.llm.num_hidden_layers - 1}, "
                         f"got {settings.question_layer}")
    tokenizer = build_tokenizer(work_dir / "llm")
    model = NvilaModel(config)
    heads = RegionHeads(config.llm.hidden_size)
    init_weights(model)
    start = time.perf_counter()
    kind_accuracy = pretrain_vision(model, settings.vision, TRAIN_SEED + 1000 * settings.seed + 500)
    tqdm.write(f"vision stage: patch kind accuracy {kind_accuracy:.3f}")
    parameters = [*model.parameters(), *heads.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=settings.lr, betas=(0.9, 0.95), weight_decay=0.01)
    stream = conversation_stream(TRAIN_SEED + 1000 * settings.seed)
    bar = progress_bar(range(settings.steps), desc="train", unit="step")
    for step in bar:
        samples = [make_sample(config, tokenizer, next(stream)) for _ in range(settings.batch_size)]
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(settings, step)
        loss = loss_on_batch(model, heads, tokenizer, samples, settings.question_weight, settings.question_layer,
                            settings.attention_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if (step + 1) % settings.eval_every == 0 or step + 1 == settings.steps:
            result = quick_eval(model, config, tokenizer, settings.eval_n)
            families = " ".join(f"{k}={v:.2f}" for k, v in result["families"].items())
            bar.write(f"step {step + 1}: accuracy {result['accuracy']:.3f} ({families})")
    minutes = (time.perf_counter() - start) / 60
    state = {f"{part}/{name}": t.detach() for part, module in
             (("vision_tower", model.vision_tower), ("mm_projector", model.mm_projector), ("llm", model.llm))
             for name, t in module.state_dict().items()}
    fallback = random_tensors(settings.seed)  # the unused last SigLIP layer and post-LN, kept for the layout

    def tensors(part: str, name: str, shape: tuple[int, ...]) -> torch.Tensor:
        key = f"{part}/{name}"
        return state[key] if key in state else fallback(part, name, shape)

    def write_tokenizer(llm_dir: Path) -> None:
        for file in (work_dir / "llm").iterdir():
            (llm_dir / file.name).write_bytes(file.read_bytes())

    write_checkpoint(out, files, tensors, write_tokenizer, dtype=torch.float32, replace=True)
    return {"minutes": round(minutes, 1), "steps": settings.steps}
