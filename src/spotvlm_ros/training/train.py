"""Train a default model (edge or cloud) from scratch on generated scenes, on the CPU."""

from __future__ import annotations

import argparse
import json
import math
import pickle
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from spotvlm_ros.cli_types import share
from spotvlm_ros.core.compression import tokenizer_counter
from spotvlm_ros.training.batches import encode_batch, weighted_loss
from spotvlm_ros.training.data import ROLES, draw_sample
from spotvlm_ros.training.checkpoint import ROLE_SPECS, add_whole_words, build_role_checkpoint
from spotvlm_ros.training.pool import FPS, build_pool

MARKER_FILE = 'spotvlm_training.json'


def load_pool(train_scenes: int, frame_step: int, cache: Optional[Path], frames: int = 100):
    """The training pool (seeds 0..train_scenes-1, their first `frames` frames), from `cache`
    when already built."""
    if cache is not None and cache.exists():
        return pickle.loads(cache.read_bytes())
    pool = build_pool(range(train_scenes), frame_step, frames)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_bytes(pickle.dumps(pool))
    return pool


def load_books(paths: Sequence[str]) -> list:
    """The drives of every reply book named."""
    return [b for p in paths for b in pickle.loads(Path(p).read_bytes())['books']]


def lr_at(step: int, steps: int, peak: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(role: str, out: Path, steps: int, batch_size: int, lr: float, seed: int,
          pool: dict, log=print, max_s: float = float('inf'),
          init_from: Optional[Path] = None, key_weight: float = 1.0,
          zoom_curriculum: float = 0.0, stop_after: Optional[int] = None,
          books: Sequence = (), loss_per: str = 'token', blind: float = 0.0,
          whole_words: Sequence[str] = ()) -> dict:
    """Build the role's model, train it, save it as fp16 safetensors; the run's summary."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    spec = ROLE_SPECS[role]
    # A second stage starts from an earlier run's weights instead of random ones.
    source = Path(init_from) if init_from else build_role_checkpoint(out, role, seed)
    processor = AutoProcessor.from_pretrained(source, local_files_only=True)
    model = AutoModelForImageTextToText.from_pretrained(source, local_files_only=True,
                                                        dtype=torch.float32)
    added = add_whole_words(processor, model, whole_words)
    if added:
        log(f'{role}: {", ".join(added)} now one token each')
    previous = None
    if init_from and (Path(init_from) / MARKER_FILE).exists():
        previous = json.loads((Path(init_from) / MARKER_FILE).read_text())
    torch.manual_seed(seed)
    rng = np.random.default_rng([seed, 1])
    count = tokenizer_counter(processor.tokenizer)  # the fuser's budgets, in these tokens
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    model.train()
    start = time.perf_counter()
    losses = []
    for step in range(steps):
        if stop_after is not None and step >= stop_after:
            # The schedule (learning rate, zoom) stays that of `steps`: repeats a capped run.
            log(f'{role}: stopped after {step} of {steps} steps as asked')
            break
        if time.perf_counter() - start > max_s:
            log(f'{role}: time cap reached after {step} of {steps} steps')  # a safety stop
            break
        for group in optimiser.param_groups:
            group['lr'] = lr_at(step, steps, lr, warmup=min(100, steps // 10 + 1))
        # Zoom curriculum: close crops of small objects first, whole frames by its end.
        zoom_from = min(1.0, step / (zoom_curriculum * steps)) if zoom_curriculum else 1.0
        batch = encode_batch(processor, [draw_sample(pool, role, rng, zoom_from, books, count,
                                                     blind) for _ in range(batch_size)],
                             key_weight=key_weight,
                             per_sample=loss_per == 'sample')
        labels, weights = batch.pop('labels'), batch.pop('weights')
        loss = weighted_loss(model(**batch).logits, labels, weights)
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        losses.append(loss.item())
        if (step + 1) % 25 == 0 or step == 0:
            log(f'{role} step {step + 1}/{steps} loss {np.mean(losses[-25:]):.3f} '
                f'{time.perf_counter() - start:.0f} s')
    model.eval()
    model.to(torch.float16).save_pretrained(out)
    processor.save_pretrained(out)
    summary = {'role': role, 'max_pixels': spec['max_pixels'],
               'steps_planned': steps, 'steps': len(losses), 'batch_size': batch_size, 'lr': lr,
               'seed': seed, 'key_weight': key_weight, 'loss_per': loss_per, 'blind': blind,
               'zoom_curriculum': zoom_curriculum, 'whole_words_added': added,
               'train_scenes': len(pool), 'reply_book_drives': [b.seed for b in books],
               'first_loss': float(np.mean(losses[:25])),
               'final_loss': float(np.mean(losses[-25:])),
               'train_s': round(time.perf_counter() - start, 1),
               'parameters': sum(p.numel() for p in model.parameters()),
               'init_from': previous,
               'data': 'synthetic driving scenes from spotvlm_ros.scenes only; not a real-world model'}
    (out / MARKER_FILE).write_text(json.dumps(summary, indent=1))
    return summary


def main(argv: Optional[Sequence[str]] = None) -> int:
    """CLI: spotvlm train-model --role edge|cloud OUT_DIR."""
    parser = argparse.ArgumentParser(prog='spotvlm train-model',
                                     description=__doc__.splitlines()[0])
    parser.add_argument('out_dir')
    parser.add_argument('--role', choices=ROLES, required=True)
    parser.add_argument('--steps', type=int, default=1500)
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--lr', type=float, default=1e-3)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--train-scenes', type=int, default=200)
    parser.add_argument('--frame-step', type=int, default=5, help='pool every Nth frame')
    parser.add_argument('--pool-seconds', type=float, default=10.0,
                        help='pool frames from the first this many seconds of each drive')
    # One thread: on two shared cores, two threads per process ran ~30x slower here.
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--max-minutes', type=float, default=float('inf'),
                        help='stop early (and save) past this much training time')
    parser.add_argument('--stop-after', type=int, default=None,
                        help='stop (and save) after this many of the --steps, keeping their '
                             'schedule: repeats a run that --max-minutes stopped')
    parser.add_argument('--init-from', default=None,
                        help='start from this checkpoint of the same role (a second stage)')
    parser.add_argument('--key-weight', type=float, default=1.0,
                        help="loss weight of the short answer's tokens in a cloud reply")
    parser.add_argument('--loss-per', choices=('token', 'sample'), default='token',
                        help='average the loss over answer tokens (long answers weigh more) '
                             'or over samples (every answer weighs the same)')
    parser.add_argument('--blind-share', type=share, default=0.0,
                        help='share of reply-book samples whose frame is blank, so that only '
                             'their context can answer')
    parser.add_argument('--zoom-curriculum', type=float, default=0.0,
                        help='share of the steps over which cloud samples go from close crops '
                             'of their object to whole frames (0: whole frames only)')
    parser.add_argument('--whole-words', default='', metavar='W1,W2',
                        help='words the tokenizer spells in pieces that get an id of their '
                             'own before training (e.g. green,yellow)')
    parser.add_argument('--pool-cache', default=None, help='pickle file to reuse the pool')
    parser.add_argument('--replies', action='append', default=[], metavar='BOOK',
                        help='reply book(s) of spotvlm build-replies: edge samples then carry '
                             'the context the nodes hand over (repeatable)')
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    pool = load_pool(args.train_scenes, args.frame_step,
                     Path(args.pool_cache) if args.pool_cache else None,
                     round(args.pool_seconds * FPS))
    print(f'pool: {len(pool)} scenes in {time.perf_counter() - t0:.0f} s', flush=True)
    summary = train(args.role, Path(args.out_dir), args.steps, args.batch_size, args.lr,
                    args.seed, pool, log=lambda m: print(m, flush=True),
                    max_s=args.max_minutes * 60, init_from=args.init_from,
                    key_weight=args.key_weight, zoom_curriculum=args.zoom_curriculum,
                    stop_after=args.stop_after, books=load_books(args.replies),
                    loss_per=args.loss_per, blind=args.blind_share,
                    whole_words=[w for w in args.whole_words.split(',') if w])
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
