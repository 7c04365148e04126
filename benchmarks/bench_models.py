"""Edge backend costs, measured in one run on one offline checkpoint.

Run: python benchmarks/bench_models.py [--preset small|tiny] [--repeat N] [--threads N]
         [--parts overhead,focus,onnx]
Prints, with A/B runs interleaved so machine load hits both alike:
- backend overhead: TransformersBackend.answer / bare model.generate (target <= 1.05), and
  against the bare transformers pipeline (chat template + generate + decode), over 3N rounds;
  backend.prepare against processor.apply_chat_template making the same tensors;
- focus plan vs the full-resolution frame: visual tokens and prefill time as ratios
  (target: at most half the visual tokens);
- ONNX Runtime vision encoder vs the torch encoder, on both inputs;
- the whole-model ONNX backend vs the transformers backend, with greedy-token parity.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

try:
    import spotvlm_ros  # noqa: F401
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'src'))

from spotvlm_ros.core.types import FocusCrop, FocusPlan, HistoryTurn, Region  # noqa: E402

QUERY = 'Is it safe to go? Answer briefly.'
HISTORY = [HistoryTurn('What is ahead?', 'A red car waits at the crosswalk, a cyclist at right.',
                       source_stamp=0.0, age_s=2.4)]
CROP = 224
PARTS = ('overhead', 'focus', 'onnx')  # onnx: the export, the vision encoder and the backend


def textured_frame(width: int, height: int, seed: int = 0) -> np.ndarray:
    """Smoothed noise, RGB uint8, so image preprocessing does real work."""
    import cv2

    noise = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return cv2.GaussianBlur(noise, (0, 0), 2.0)


def focus_plan(frame: np.ndarray) -> FocusPlan:
    """A 448x252 global view plus two 224x224 full-resolution crops of the frame."""
    import cv2

    plan = FocusPlan(global_view=cv2.resize(frame, (448, 252), interpolation=cv2.INTER_AREA))
    for x, y, label in ((300, 250, 'car'), (900, 350, 'cyclist')):
        crop = frame[y:y + CROP, x:x + CROP].copy()
        plan.crops.append(FocusCrop(crop, label, Region(label, x, y, x + CROP, y + CROP)))
    return plan


def load() -> str:
    """The 1-minute load average, as the shared machine's noise level."""
    return open('/proc/loadavg').read().split()[0]


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved_samples(fns: dict, repeat: int) -> dict:
    """Seconds of each callable over `repeat` rounds, each round running all of them in turn.

    Each gets one warm-up call first. Runs of one round are adjacent in time, so load from
    elsewhere on a shared machine tends to hit them alike.
    """
    for fn in fns.values():
        fn()
    samples = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            samples[name].append(timed(fn))
    return samples


def interleaved(fns: dict, repeat: int) -> dict:
    """Median and minimum seconds of each callable (see `interleaved_samples`)."""
    samples = interleaved_samples(fns, repeat)
    return {name: (statistics.median(s), min(s)) for name, s in samples.items()}


def bench_overhead(backend, frame, repeat: int) -> None:
    import torch

    from spotvlm_ros.models.prompt import build_messages

    processor, model, config = backend.processor, backend.model, backend.generation_config
    inputs = backend.prepare(frame, QUERY, HISTORY)

    def bare_generate():
        with torch.inference_mode():
            return model.generate(**inputs, generation_config=config)

    def bare_pipeline():
        prepared = processor.apply_chat_template(
            build_messages(frame, QUERY, HISTORY), add_generation_prompt=True, tokenize=True,
            return_dict=True, return_tensors='pt')
        with torch.inference_mode():
            out = model.generate(**prepared, generation_config=config)
        prompt_len = prepared['input_ids'].shape[1]
        return processor.batch_decode(out[:, prompt_len:], skip_special_tokens=True)

    def processor_prepare():
        return processor.apply_chat_template(
            build_messages(frame, QUERY, HISTORY), add_generation_prompt=True, tokenize=True,
            return_dict=True, return_tensors='pt')

    result = backend.answer(frame, QUERY, HISTORY)
    bare_ids = bare_generate()[0, inputs['input_ids'].shape[1]:].tolist()
    assert result.token_ids == tuple(bare_ids), 'backend and bare generate disagree'
    reference = processor_prepare()
    assert list(inputs.keys()) == list(reference.keys()) and all(
        torch.equal(inputs[k], reference[k]) for k in reference), 'prepare and processor disagree'

    def answer():
        return backend.answer(frame, QUERY, HISTORY)

    # As the edge node runs: one answer after another, nothing else between them.
    loop = interleaved_samples({'bare model.generate': bare_generate,
                                'backend.answer': answer}, repeat)
    parts = interleaved_samples({'bare model.generate': bare_generate,
                                 'bare template+generate+decode': bare_pipeline,
                                 'backend.answer': answer,
                                 'backend.prepare (template + pixels)':
                                     lambda: backend.prepare(frame, QUERY, HISTORY),
                                 'processor.apply_chat_template (same inputs)':
                                     processor_prepare}, repeat)
    print(f'[overhead] {frame.shape[1]}x{frame.shape[0]} frame + 1 history turn: '
          f'{result.prompt_tokens} prompt tokens, {result.new_tokens} new tokens; '
          f'{repeat} rounds of each loop; load average {load()}')
    print(f'  {"":<44}{"median":>10}{"min":>10}{"paired":>10}')
    for name, values in parts.items():
        print(f'  {name:<44}{statistics.median(values) * 1e3:7.1f} ms{min(values) * 1e3:7.1f} ms')
    answer, prepare = parts['backend.answer'], parts['backend.prepare (template + pixels)']
    beyond = [a - p for a, p in zip(answer, prepare)]
    for label, numerator, bare in (
            ('overhead = answer / bare generate', loop['backend.answer'],
             loop['bare model.generate']),
            ('  the same, among the rows above', answer, parts['bare model.generate']),
            ('(answer - prepare) / bare generate', beyond, parts['bare model.generate']),
            ('answer / bare template+generate+decode', answer,
             parts['bare template+generate+decode']),
            ('prepare / processor.apply_chat_template', prepare,
             parts['processor.apply_chat_template (same inputs)'])):
        paired = statistics.median(a / b for a, b in zip(numerator, bare))
        print(f'  {label:<44}{statistics.median(numerator) / statistics.median(bare):10.3f}'
              f'{min(numerator) / min(bare):10.3f}{paired:10.3f}')
    print('  (paired: median over rounds of the ratio within a round; target <= 1.05 for '
          'answer / bare generate, measured as the edge node runs: answers back to back, bare '
          'generate between them. The fixed costs, chat template and image preprocessing, are '
          'the prepare row: bare generate is handed them ready-made. The processor row makes '
          'the same tensors, bit for bit, the way the processor does)')


def bench_focus(backend, frame, plan, repeat: int) -> None:
    runs = {'full': [], 'focus': []}
    for _ in range(repeat + 1):  # the first of each is a warm-up
        runs['full'].append(backend.answer(frame, QUERY))
        runs['focus'].append(backend.answer(frame, QUERY, focus=plan))
    stats = {}
    for name, results in runs.items():
        results = results[1:]
        stats[name] = (results[0].visual_tokens,
                       statistics.median(r.timings.prefill_s for r in results),
                       statistics.median(r.timings.total_s for r in results))
    print(f'[focus] {frame.shape[1]}x{frame.shape[0]} frame vs focus plan (448x252 global view '
          f'+ {len(plan.crops)} crops {CROP}x{CROP}); median of {repeat}')
    for name, (tokens, prefill, total) in stats.items():
        print(f'  {name:<6} visual tokens {tokens:6d}   prefill {prefill * 1e3:8.1f} ms   '
              f'answer {total * 1e3:8.1f} ms')
    token_ratio = stats['focus'][0] / stats['full'][0]
    verdict = 'met' if token_ratio <= 0.5 else 'NOT met'
    print(f'  focus / full: visual tokens {token_ratio:.3f} (target <= 0.5: {verdict}), '
          f'prefill time {stats["focus"][1] / stats["full"][1]:.3f}, '
          f'answer time {stats["focus"][2] / stats["full"][2]:.3f}')


def bench_vision(backend, onnx_dir: Path, frame, plan, repeat: int, threads: int) -> None:
    import torch

    from spotvlm_ros.models.onnx_backend import OnnxVisionEncoder, select_providers
    from spotvlm_ros.models.onnx_export import VISION_FILE, vision_encoder_inputs

    visual = backend.model.model.visual
    encoder = OnnxVisionEncoder(onnx_dir / VISION_FILE, visual.config,
                                select_providers('auto'), threads)
    print(f'[vision encoder] ONNX Runtime ({encoder.provider}) vs torch eager on the same '
          f'pixels; median of {repeat} (min)')
    for name, focus in (('full frame', None), ('focus plan', plan)):
        inputs = backend.prepare(frame, QUERY, focus=focus)
        pixels, grid = inputs['pixel_values'], inputs['image_grid_thw']
        aux = vision_encoder_inputs(pixels, grid, visual.config)
        feed = {k: v.numpy() for k, v in aux.items()}

        def run_torch():
            with torch.inference_mode():
                return visual(pixels, grid_thw=grid).pooler_output

        times = interleaved({'torch': run_torch, 'onnx': lambda: encoder(pixels, grid),
                             'session': lambda: encoder.session.run(None, feed)}, repeat)
        diff = float(np.abs(encoder(pixels, grid) - run_torch().numpy()).max())
        (torch_s, torch_min), (onnx_s, onnx_min) = times['torch'], times['onnx']
        print(f'  {name:<11}{int(grid.prod(-1).sum()):6d} patches: torch {torch_s * 1e3:7.1f} '
              f'({torch_min * 1e3:.1f}) ms, onnx {onnx_s * 1e3:7.1f} ({onnx_min * 1e3:.1f}) ms '
              f'[session alone {times["session"][0] * 1e3:.1f}], onnx/torch '
              f'{onnx_s / torch_s:.3f} ({onnx_min / torch_min:.3f}), max |diff| {diff:.1e}')


def bench_onnx_backend(backend, onnx_dir: Path, frame, plan, repeat: int, threads: int) -> None:
    from spotvlm_ros.models.onnx_backend import OnnxBackend

    onnx = OnnxBackend(onnx_dir, device='auto', max_new_tokens=backend.max_new_tokens,
                       threads=threads)
    same = all(onnx.answer(frame, QUERY, HISTORY, focus=f).token_ids
               == backend.answer(frame, QUERY, HISTORY, focus=f).token_ids for f in (None, plan))
    results = {'transformers': [], 'onnx': []}

    def timed_answer(name, model):
        return lambda: results[name].append(model.answer(frame, QUERY, HISTORY, focus=plan))

    times = interleaved({'transformers': timed_answer('transformers', backend),
                         'onnx': timed_answer('onnx', onnx)}, repeat)
    (torch_s, _), (onnx_s, _) = times['transformers'], times['onnx']
    print(f'[onnx backend] whole model on {onnx.provider}, focus plan + history; '
          f'median of {repeat}; load average {load()}')
    print(f'  transformers answer {torch_s * 1e3:7.1f} ms, onnx answer {onnx_s * 1e3:7.1f} ms, '
          f'onnx/transformers {onnx_s / torch_s:.3f}, same greedy tokens: {same}')
    for name, answers in results.items():
        answers = answers[1:]  # the warm-up call
        prefill = statistics.median(a.timings.prefill_s for a in answers)
        per_token = statistics.median(a.timings.decode_s / max(1, a.new_tokens - 1)
                                      for a in answers)
        print(f'  {name:<13} prefill (vision encoder + prompt) {prefill * 1e3:7.1f} ms, '
              f'decode {per_token * 1e3:5.2f} ms per token')
    onnx.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--preset', default='small', help='checkpoint preset: tiny or small')
    parser.add_argument('--repeat', type=int, default=15)
    parser.add_argument('--threads', type=int, default=1, help='torch / ONNX Runtime threads')
    parser.add_argument('--max-new-tokens', type=int, default=16)
    parser.add_argument('--parts', default=','.join(PARTS),
                        help=f'comma-separated parts to run, of {",".join(PARTS)} (default: all)')
    args = parser.parse_args(argv)
    parts = set(args.parts.split(','))
    if not parts <= set(PARTS):
        parser.error(f'unknown part(s) {sorted(parts - set(PARTS))}; choose from {PARTS}')

    import torch

    from spotvlm_ros.models.onnx_export import export_model
    from spotvlm_ros.models.tiny import cache_name, tiny_checkpoint
    from spotvlm_ros.models.transformers_backend import TransformersBackend

    torch.set_num_threads(args.threads)
    checkpoint = tiny_checkpoint(cache_name(args.preset), preset=args.preset)
    backend = TransformersBackend(checkpoint, device='auto', max_new_tokens=args.max_new_tokens)
    params = sum(p.numel() for p in backend.model.parameters())
    print(f'checkpoint {checkpoint.name}: random-weight Qwen2.5-VL, {params / 1e6:.2f} M '
          f'parameters, float32 on {backend.device}; torch {torch.__version__}, '
          f'{args.threads} thread(s), {platform.machine()}')
    frame = textured_frame(1280, 720)
    plan = focus_plan(frame)
    if 'overhead' in parts:
        bench_overhead(backend, textured_frame(640, 480, seed=1), 3 * args.repeat)
    if 'focus' in parts:
        bench_focus(backend, frame, plan, args.repeat)
    if 'onnx' not in parts:
        backend.close()
        return 0
    with tempfile.TemporaryDirectory(prefix='spotvlm-onnx-') as tmp:
        start = time.perf_counter()
        onnx_dir = export_model(checkpoint, Path(tmp) / 'onnx')
        print(f'[export] whole model to ONNX in {time.perf_counter() - start:.1f} s')
        bench_vision(backend, onnx_dir, frame, plan, args.repeat, args.threads)
        bench_onnx_backend(backend, onnx_dir, frame, plan, args.repeat, args.threads)
    backend.close()
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
