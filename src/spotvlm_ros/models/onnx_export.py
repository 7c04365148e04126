"""Export a Qwen2.5-VL transformers checkpoint to ONNX: the vision encoder and the decoder.

The vision encoder computes its position ids, window order and attention segments with
Python loops over the image grid, which no exporter can trace with dynamic sizes. Those are
computed outside the graph (`vision_encoder_inputs`) and passed in as index tensors: each
attention layer gathers its segments (windows, or whole images) into a padded batch, attends
within each under a padding mask, and scatters back. Same maths as the per-segment loop,
one graph for every image size, and cost linear in the number of windows.

The decoder (language model + head) is exported with its key/value cache as plain inputs
and outputs, so a backend runs prefill and each decode step with the same graph. The token
embedding table is saved as a .npy (a gather needs no graph). The export folder also holds
the processor and config files, so it is self-contained.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
import warnings
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from spotvlm_ros.models.base import ModelLoadError

VISION_FILE = 'vision_encoder.onnx'
DECODER_FILE = 'decoder.onnx'
EMBED_FILE = 'embed_tokens.npy'
MANIFEST_FILE = 'spotvlm_onnx.json'
OPSET = 18
EXPORTERS = ('torchscript', 'dynamo')
VISION_INPUTS = ('pixel_values', 'position_ids', 'window_index', 'reverse_index',
                 'full_gather', 'full_valid', 'full_scatter',
                 'window_gather', 'window_valid', 'window_scatter')
# Copied from the checkpoint so the export folder loads its processor on its own.
SIDE_FILES = ('config.json', 'generation_config.json', 'processor_config.json',
              'preprocessor_config.json', 'video_preprocessor_config.json', 'tokenizer.json',
              'tokenizer_config.json', 'vocab.json', 'merges.txt', 'special_tokens_map.json',
              'added_tokens.json', 'chat_template.jinja', 'chat_template.json')


def segment_layout(cu_seqlens: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Index tensors that pack segments of a sequence into a padded (segments, longest) batch.

    gather (S, L): the sequence position at each slot (0 in padding); valid (S, L): whether a
    slot holds a position; scatter (N,): each position's slot in the flattened batch.
    """
    starts, lengths = cu_seqlens[:-1].long(), (cu_seqlens[1:] - cu_seqlens[:-1]).long()
    longest = int(lengths.max())
    offsets = torch.arange(longest)[None, :]
    valid = offsets < lengths[:, None]
    gather = torch.where(valid, starts[:, None] + offsets, torch.zeros((), dtype=torch.long))
    segment = torch.repeat_interleave(torch.arange(len(lengths)), lengths)
    scatter = segment * longest + torch.arange(int(cu_seqlens[-1])) - starts[segment]
    return gather, valid, scatter


def vision_encoder_inputs(pixel_values, grid_thw, vision_config) -> dict:
    """Everything the exported encoder takes for these images, as torch tensors by name."""
    from transformers.vision_utils import (get_vision_cu_seqlens, get_vision_position_ids,
                                           get_vision_window_index)

    grid_thw = torch.as_tensor(grid_thw)
    merge = vision_config.spatial_merge_size
    window_index, cu_window = get_vision_window_index(
        grid_thw, spatial_merge_size=merge, window_size=vision_config.window_size,
        patch_size=vision_config.patch_size)
    inputs = {
        'pixel_values': torch.as_tensor(pixel_values),
        'position_ids': get_vision_position_ids(grid_thw, merge).long(),
        'window_index': window_index.long(),
        'reverse_index': torch.argsort(window_index).long(),
    }
    for kind, cu_seqlens in (('full', get_vision_cu_seqlens(grid_thw)), ('window', cu_window)):
        layout = segment_layout(cu_seqlens)
        inputs.update(zip((f'{kind}_gather', f'{kind}_valid', f'{kind}_scatter'), layout))
    return inputs


def _padding_bias(valid: torch.Tensor, dtype) -> torch.Tensor:
    """Additive key mask (S, 1, 1, L): 0 on real slots, the dtype's minimum on padding."""
    blocked = torch.full((), torch.finfo(dtype).min, dtype=dtype)
    return torch.where(valid, torch.zeros((), dtype=dtype), blocked)[:, None, None, :]


def _segment_attention(attn, x, cos, sin, gather, bias, scatter):
    """The encoder block's attention within each segment, all segments in one padded batch."""
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import apply_rotary_pos_emb_vision

    seq = x.shape[0]
    q, k, v = attn.qkv(x).reshape(seq, 3, attn.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
    q, k = apply_rotary_pos_emb_vision(q, k, cos, sin)
    # (positions, heads, dim) -> (segments, heads, longest, dim)
    q, k, v = (t[gather].transpose(1, 2) for t in (q, k, v))
    weights = torch.matmul(q, k.transpose(2, 3)) * attn.scaling + bias
    weights = torch.softmax(weights.float(), dim=-1).to(q.dtype)
    out = torch.matmul(weights, v).transpose(1, 2)  # padded query rows are dropped below
    return attn.proj(out.reshape(-1, out.shape[2] * out.shape[3])[scatter])


def patch_embedding(patch_embed, pixel_values):
    """The patch embedding as one matrix product: its Conv3d has kernel = stride = one patch,
    which ONNX Runtime's CPU Conv runs several times slower than the same MatMul."""
    weight = patch_embed.proj.weight  # (hidden, channels, time, patch, patch), no bias
    return pixel_values.to(weight.dtype) @ weight.reshape(weight.shape[0], -1).t()


class ExportableVisionEncoder(torch.nn.Module):
    """`model.model.visual` (shared weights) with its grid bookkeeping passed in as tensors."""

    def __init__(self, visual):
        super().__init__()
        self.visual = visual
        self.unit = visual.spatial_merge_size ** 2
        self.full_blocks = set(visual.fullatt_block_indexes)

    def permute(self, x, window_index):
        """Reorder merge groups of patches into window order."""
        seq = x.shape[0]
        return x.reshape(seq // self.unit, self.unit, -1)[window_index].reshape(seq, -1)

    def forward(self, pixel_values, position_ids, window_index, reverse_index,
                full_gather, full_valid, full_scatter,
                window_gather, window_valid, window_scatter):
        vis = self.visual
        hidden = self.permute(patch_embedding(vis.patch_embed, pixel_values), window_index)
        cos, sin = vis.rotary_pos_emb(hidden, position_ids)
        cos, sin = self.permute(cos, window_index), self.permute(sin, window_index)
        full = (full_gather, _padding_bias(full_valid, hidden.dtype), full_scatter)
        window = (window_gather, _padding_bias(window_valid, hidden.dtype), window_scatter)
        for i, block in enumerate(vis.blocks):
            layout = full if i in self.full_blocks else window
            attention = _segment_attention(block.attn, block.norm1(hidden), cos, sin, *layout)
            hidden = hidden + attention
            hidden = hidden + block.mlp(block.norm2(hidden))
        return vis.merger(hidden)[reverse_index]


class ExportableDecoder(torch.nn.Module):
    """Language model + head with the key/value cache as flat tensors in and out."""

    def __init__(self, model):
        super().__init__()
        self.language_model = model.model.language_model
        self.lm_head = model.lm_head

    def forward(self, inputs_embeds, position_ids, *past):
        from transformers import DynamicCache

        cache = DynamicCache(ddp_cache_data=list(zip(past[0::2], past[1::2])))
        out = self.language_model(inputs_embeds=inputs_embeds, position_ids=position_ids,
                                  cache=cache, use_cache=True)
        # Only the last position's logits are needed to pick the next token.
        logits = self.lm_head(out.last_hidden_state[:, -1:, :])
        present = []
        for layer in out.cache.layers:
            present += [layer.keys, layer.values]
        return (logits, *present)


def load_for_export(checkpoint):
    """Folder, processor and float32 model of a local Qwen2.5-VL checkpoint."""
    from spotvlm_ros.models.checkpoint import resolve_checkpoint
    from spotvlm_ros.models.transformers_backend import load_processor_and_model

    path = resolve_checkpoint(str(checkpoint))
    processor, model = load_processor_and_model(path, 'cpu', torch.float32, 'eager')
    if model.config.model_type != 'qwen2_5_vl':
        raise ModelLoadError(f"ONNX export supports model_type 'qwen2_5_vl'; '{path}' is "
                             f"'{model.config.model_type}'")
    return path, processor, model


def _sample_images(processor, sizes=((112, 168), (56, 84))):
    """Processor outputs for two small images of different sizes (exercises multi-image)."""
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for h, w in sizes]
    out = processor.image_processor(images=images, return_tensors='pt')
    return out['pixel_values'], out['image_grid_thw']


def _export(module, args: tuple, path: Path, input_names, output_names, dynamic_axes,
            exporter: str = 'torchscript') -> None:
    """torch.onnx.export with the TorchScript tracer (fast) or torch.export ('dynamo')."""
    if exporter not in EXPORTERS:
        raise ValueError(f"unknown exporter '{exporter}'; use one of {', '.join(EXPORTERS)}")
    # The tracer warns about every Python branch it freezes; the branches frozen here give
    # the same graph for every size (tests compare with the model at other sizes). The
    # TorchScript exporter is deprecated but exports these graphs several times faster than
    # torch.export, with the same numbers; the other notes are about axis naming only.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        for note in ('.*legacy TorchScript-based ONNX export', '.*feature will be removed',
                     ".*'dynamic_axes' is not recommended",
                     '.*from_dynamic_axes_to_dynamic_shapes',
                     '.*will not be used, since it shares the same shape constraints'):
            warnings.filterwarnings('ignore', message=note)
        torch.onnx.export(module, args, str(path), input_names=list(input_names),
                          output_names=list(output_names), dynamic_axes=dynamic_axes,
                          opset_version=OPSET, dynamo=exporter == 'dynamo', verbose=False)


def export_vision_encoder(checkpoint, out_dir, *, exporter: str = 'torchscript', model=None,
                          processor=None) -> Path:
    """Export the vision encoder to <out_dir>/vision_encoder.onnx and return that path."""
    if model is None:
        _, processor, model = load_for_export(checkpoint)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    encoder = ExportableVisionEncoder(model.model.visual).eval()
    pixel_values, grid_thw = _sample_images(processor)
    inputs = vision_encoder_inputs(pixel_values, grid_thw, model.config.vision_config)
    args = tuple(inputs[name] for name in VISION_INPUTS)
    with torch.no_grad():  # the rewritten attention must match the model it came from
        expected = model.model.visual(pixel_values, grid_thw=grid_thw).pooler_output
        diff = float((encoder(*args) - expected).abs().max())
    if diff > 1e-4:
        raise RuntimeError(f'exportable encoder differs from the model by {diff:.3g}')
    axes = {'pixel_values': {0: 'patches'}, 'position_ids': {0: 'patches'},
            'window_index': {0: 'tokens'}, 'reverse_index': {0: 'tokens'},
            'image_embeds': {0: 'tokens'}}
    for kind in ('full', 'window'):
        layout = {0: f'{kind}_segments', 1: f'{kind}_longest'}
        axes.update({f'{kind}_gather': layout, f'{kind}_valid': layout,
                     f'{kind}_scatter': {0: 'patches'}})
    path = out / VISION_FILE
    _export(encoder, args, path, VISION_INPUTS, ['image_embeds'], axes, exporter)
    return path


def export_decoder(checkpoint, out_dir, *, exporter: str = 'torchscript', model=None) -> Path:
    """Export the language model with its cache to <out_dir>/decoder.onnx, and its embeddings."""
    if model is None:
        _, _, model = load_for_export(checkpoint)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    text = model.config.text_config
    head_dim = getattr(text, 'head_dim', None) or text.hidden_size // text.num_attention_heads
    past_len, new_len = 3, 5  # nonzero and unequal, so the traced causal mask stays general
    kv_shape = (1, text.num_key_value_heads, past_len, head_dim)
    past = [torch.randn(kv_shape) for _ in range(2 * text.num_hidden_layers)]
    embeds = torch.randn(1, new_len, text.hidden_size)
    positions = torch.arange(past_len, past_len + new_len).view(1, 1, -1).expand(3, 1, -1)
    names_in, names_out = ['inputs_embeds', 'position_ids'], ['logits']
    axes = {'inputs_embeds': {1: 'new'}, 'position_ids': {2: 'new'}}
    for i in range(text.num_hidden_layers):
        for kind in ('key', 'value'):
            names_in.append(f'past_{kind}_{i}')
            names_out.append(f'present_{kind}_{i}')
            axes[f'past_{kind}_{i}'] = {2: 'past'}
            axes[f'present_{kind}_{i}'] = {2: 'total'}
    path = out / DECODER_FILE
    _export(ExportableDecoder(model).eval(), (embeds, positions.contiguous(), *past), path,
            names_in, names_out, axes, exporter)
    table = model.model.language_model.embed_tokens.weight.detach().float().numpy()
    np.save(out / EMBED_FILE, table)
    return path


def export_model(checkpoint, out_dir, *, vision_only: bool = False,
                 exporter: str = 'torchscript') -> Path:
    """Export `checkpoint` (vision encoder, and decoder unless vision_only) into `out_dir`."""
    start = time.perf_counter()
    path, processor, model = load_for_export(checkpoint)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    export_vision_encoder(path, out, exporter=exporter, model=model, processor=processor)
    parts = ['vision_encoder']
    if not vision_only:
        export_decoder(path, out, exporter=exporter, model=model)
        parts.append('decoder')
    for name in SIDE_FILES:
        if (path / name).is_file():
            shutil.copy2(path / name, out / name)
    manifest = {'source': str(path.resolve()), 'model_type': model.config.model_type,
                'parts': parts, 'opset': OPSET, 'dtype': 'float32', 'exporter': exporter,
                'export_s': round(time.perf_counter() - start, 2)}
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1))
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    """CLI: export a checkpoint folder to ONNX and print the output folder."""
    parser = argparse.ArgumentParser(prog='spotvlm export-onnx',
                                     description=__doc__.splitlines()[0])
    parser.add_argument('checkpoint', help='local checkpoint folder or cached hub id')
    parser.add_argument('out_dir', help='folder to write the ONNX files into')
    parser.add_argument('--vision-only', action='store_true',
                        help='export only the vision encoder')
    parser.add_argument('--exporter', choices=EXPORTERS, default='torchscript',
                        help='torchscript: fast tracer (default); dynamo: torch.export, slower')
    args = parser.parse_args(argv)
    try:
        out = export_model(args.checkpoint, args.out_dir, vision_only=args.vision_only,
                           exporter=args.exporter)
    except ModelLoadError as exc:
        parser.exit(2, f'error: {exc}\n')
    print(out)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
