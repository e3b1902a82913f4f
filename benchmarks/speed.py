"""Speed of the unified model, each figure as a ratio to a baseline measured in the same run.

1. ``train``  one training step (forward + backward + AdamW step) of the unified model on a mixed batch
   (text-output, text-to-image and edit samples) vs a text-only step on the text samples plus an image-only
   step on the image samples of the same batch: ratio = unified time / (text-only + image-only time).
   Also samples/s, FLOPs of the real step (``torch.utils.flop_counter.FlopCounterMode``) and MFU against this
   device's matmul rate measured in the same run (``torch.matmul`` loop in ``--dtype``).
2. ``text``   tokens/s of ``model.generate_text`` (tokenise, embed, HF ``generate`` with ``inputs_embeds`` and
   KV cache, decode) vs plain ``transformers`` ``generate`` on the same LLM with the same prompt as
   ``input_ids``; greedy, exactly ``--tokens`` new tokens for both (``min_new_tokens`` = ``max_new_tokens``
   on the LLM's generation config, so EOS cannot end either early). Target >= 0.95x.
3. ``image``  seconds of ``model.generate_image`` on a prompt quoting a word (collate + glyph ids, prefill +
   mapper, condition (masked image / glyph map) + CFG denoising + decode) at the decoder's ``cfg.decoder.hw``
   (H x W: square or a word strip) vs diffusers on the same UNet, same sampler config, steps and guidance,
   given our mapped context and null context. Target <= 1.10x. The baseline (``--image-baseline``, auto):
   ``pipeline``: ``StableDiffusionInpaintPipeline`` (same UNet, VAE, sampler; ``prompt_embeds``, full mask) for
     a latent (VAE) inpainting decoder without a glyph path. Checked before timing: same noise and masked-image
     latent -> same image; control: our 9-channel order permuted into another order (``channel_order``). Forced
     on a pixel-space ``--config``, the same preset is rebuilt with a tiny VAE and a 4-channel latent UNet.
   ``loop``: ``DiffusersLoop``, the denoising loop every diffusers pipeline runs (``from_config`` scheduler,
     ``set_timesteps``, ``randn_tensor`` x ``init_noise_sigma``, ``scale_model_input``, CFG batch [null, cond],
     ``unet(...).sample``, ``scheduler.step(...).prev_sample``, decode, ``VaeImageProcessor.postprocess``) for
     what the pipeline cannot drive: pixel space, extra glyph channels. It gets the condition channels
     precomputed once (ours builds them per call, the glyph map included: the ratio is our whole overhead).
     Checked before timing: ``decoder.sample`` and the loop on the same noise and condition -> same image;
     control: the glyph map zeroed (no glyph path: the condition's channel order scrambled) must differ.
   For both checks ``conv_in``'s condition columns are made non-zero so those inputs matter (pipeline: all
   replaced by noise; loop: only all-zero ones, e.g. freshly widened).

Timings: ``--warmup`` untimed rounds, then the median of ``--iters`` rounds; ours and the baseline are
interleaved round-robin so machine noise hits both alike; ``torch.cuda.synchronize`` around each on GPU.
Memory: "resident" = bytes of the tensors that stay allocated (weights + buffers, + AdamW state for training);
"peak" = the most bytes allocated above that during one call: CUDA ``torch.cuda.max_memory_allocated`` minus
``memory_allocated`` before the call; CPU: the peak of the running sum of torch CPU-allocator records
(+bytes per allocation, -bytes per free) of a ``torch.profiler`` trace with ``profile_memory=True`` -- allocator
bytes like the CUDA figure, not process RSS.

On CUDA the default dtype is bfloat16 and the model is cast whole (weights, AdamW state); random-weight
presets are built on the CPU directly in that dtype, then moved (a 13B LLM: ~26 GB host memory, a few minutes
of random init). MFU = FlopCounterMode FLOPs of the step / step time / the matmul rate measured here (not the
card's datasheet peak). On a CPU shared with other processes, ``--threads 1`` avoids OpenMP oversubscription
(2 threads on 2 busy cores made every figure several times slower and far noisier).

    python benchmarks/speed.py --threads 1                        # tiny preset, CPU
    python benchmarks/speed.py --model embedded --only image --threads 1   # a saved model (DIR or embedded)
    python benchmarks/speed.py --config configs/model/shapes/textharmony-vicuna13b-random.yaml --device cuda \
        --batch 3 --steps 50 --tokens 128 --iters 5 --warmup 2
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import inspect
import os
import platform
import shlex
import statistics
import sys
import time
import warnings
from typing import ClassVar

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402 (after sys.path)
from PIL import Image  # noqa: E402 (after sys.path)

from benchmarks._batches import make_batch, mixed_samples, num_tokens, to_device  # noqa: E402 (after sys.path)
from textharmony.config import load_model_config  # noqa: E402 (after sys.path)
from textharmony.model.textharmony import TextHarmonyModel  # noqa: E402 (after sys.path)
from textharmony.sequence import encode_conversation  # noqa: E402 (after sys.path)

TINY = os.path.join(ROOT, "configs", "model", "tiny.yaml")
IMAGE_PROMPT = 'An image with the text "OPEN".'     # a quoted word: the glyph path has characters to place
IMAGE_BASELINES = ("auto", "pipeline", "loop")
SECTIONS = ("train", "text", "image")
MB = 2 ** 20


# --------------------------------------------------------------------------- timing and memory
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench(fns: dict, warmup: int, iters: int, device: torch.device) -> dict[str, list[float]]:
    """Round-robin: ``warmup`` untimed rounds, then ``iters`` timed rounds of every fn, the order reversed every
    other round (A B, B A, ...) so neither side always runs first. name -> seconds."""
    for _ in range(warmup):
        for f in fns.values():
            f()
    times = {k: [] for k in fns}
    for i in range(iters):
        for k, f in (list(fns.items()) if i % 2 == 0 else list(fns.items())[::-1]):
            sync(device)
            t0 = time.perf_counter()
            f()
            sync(device)
            times[k].append(time.perf_counter() - t0)
    return times


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def summarise(times: dict[str, list[float]]) -> tuple[dict, dict]:
    """name -> (median, min) seconds."""
    return ({k: med(v) for k, v in times.items()}, {k: min(v) if v else float("nan") for k, v in times.items()})


def paired(num: list[float], den: list[float]) -> str:
    """Median [quartiles] of the per-round ratios num_i / den_i (rounds are adjacent in time, so slow drifts
    of machine load cancel): a noise indicator beside the ratio of medians."""
    r = [a / b for a, b in zip(num, den)]
    if len(r) < 2:
        return f"{r[0]:.3f}" if r else "–"
    q = statistics.quantiles(r, n=4)
    return f"{statistics.median(r):.3f} [{q[0]:.2f}–{q[2]:.2f}]"


def peak_above(fn, device: torch.device) -> int:
    """Most bytes allocated during ``fn()`` above what was allocated before it (see module doc)."""
    gc.collect()
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        sync(device)
        return torch.cuda.max_memory_allocated(device) - before
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    # the raw allocator records (+bytes per allocation, -bytes per free), in time order; far cheaper than
    # prof.events(), and exact per allocation rather than attributed per op
    recs = [(e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    cur = peak = 0
    for _, nbytes in sorted(recs):
        cur += nbytes
        peak = max(peak, cur)
    return peak


def tensor_bytes(tensors) -> int:
    seen, n = set(), 0
    for t in tensors:
        if t is None or not isinstance(t, torch.Tensor) or t.device.type == "meta":
            continue
        s = t.untyped_storage()
        if s.data_ptr() not in seen:
            seen.add(s.data_ptr())
            n += s.nbytes()
    return n


def module_bytes(*modules) -> int:
    return tensor_bytes([t for m in modules if m is not None for t in list(m.parameters()) + list(m.buffers())])


def optimizer_bytes(opt) -> int:
    return tensor_bytes([v for st in opt.state.values() for v in st.values()])


def matmul_rate(device: torch.device, dtype: torch.dtype, seconds: float = 1.0) -> float:
    """Measured dense matmul FLOP/s of this device in ``dtype`` (square matrices, 2n^3 per product)."""
    n = 8192 if device.type == "cuda" else 1024
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    for _ in range(3):
        torch.matmul(a, b)
    sync(device)
    t0, k = time.perf_counter(), 0
    while True:
        for _ in range(10 if device.type == "cuda" else 1):
            torch.matmul(a, b)
            k += 1
        sync(device)
        dt = time.perf_counter() - t0
        if dt >= seconds and k >= 3:
            return 2 * n ** 3 * k / dt


# --------------------------------------------------------------------------- model
def build_model(path: str, overrides: list[str], device: torch.device, dtype: torch.dtype) -> TextHarmonyModel:
    """Random-weight or pretrained model from a config, built on the CPU directly in ``dtype`` (a 13B LLM
    would need 52 GB in fp32 first), then moved to ``device``."""
    cfg = load_model_config(path, overrides)
    torch.manual_seed(0)
    prev = torch.get_default_dtype()
    if dtype.is_floating_point and dtype != prev:
        torch.set_default_dtype(dtype)
    try:
        model = TextHarmonyModel.from_config(cfg, dtype=dtype)
    finally:
        torch.set_default_dtype(prev)
    return model.to(device)


def load_model(args, device: torch.device, dtype: torch.dtype) -> TextHarmonyModel:
    """``--model DIR|embedded`` (a ``save_pretrained`` directory; ``embedded``: ``textharmony/assets/embedded``,
    as ``TextHarmonyPipeline.from_pretrained(None)``), else ``--config`` with ``--set`` (:func:`build_model`)."""
    if not args.model:
        return build_model(args.config, args.set, device, dtype)
    path = args.model
    if path == "embedded":
        from textharmony.pipeline import EMBEDDED_MODEL
        path = EMBEDDED_MODEL
    if not os.path.isdir(path):
        raise SystemExit(f"--model {args.model}: no such model directory ({path})")
    return TextHarmonyModel.from_pretrained(path, dtype=dtype, device=device).eval()


def latent_image_overrides(cfg) -> list[str]:
    """For a pixel-space config: a tiny VAE (f=2) and a 4-channel latent UNet of the same cross-attention width
    (widened to 9 inpainting channels by the decoder), so a diffusers inpainting pipeline can be the baseline."""
    d = cfg.decoder
    xdim = d.unet_arch.get("cross_attention_dim", 64)
    return [(f"decoder.vae_arch={{block_out_channels: [16, 32], latent_channels: 4, norm_num_groups: 8, "
            f"down_block_types: [DownEncoderBlock2D, DownEncoderBlock2D], "
            f"up_block_types: [UpDecoderBlock2D, UpDecoderBlock2D], sample_size: {d.resolution}}}"),
            (f"decoder.unet_arch={{sample_size: {d.resolution // 2}, in_channels: 4, out_channels: 4, "
            f"block_out_channels: [32, 64], layers_per_block: 1, down_block_types: [DownBlock2D, "
            f"CrossAttnDownBlock2D], up_block_types: [CrossAttnUpBlock2D, UpBlock2D], cross_attention_dim: {xdim}, "
            f"attention_head_dim: 8, norm_num_groups: 8}}")]


# --------------------------------------------------------------------------- 1. training step
def bench_train(model, args, device, dtype) -> dict:
    if args.batch < 3:
        raise SystemExit("--batch must be >= 3 (the mixed batch cycles text, text-to-image, edit samples)")
    samples = mixed_samples(model, args.batch)
    text_s = [s for s in samples if not s.is_image_output]
    img_s = [s for s in samples if s.is_image_output]
    batches = {"unified": to_device(make_batch(model, samples), device),
               "text-only": to_device(make_batch(model, text_s), device),
               "image-only": to_device(make_batch(model, img_s), device)}
    n_samples = {"unified": len(samples), "text-only": len(text_s), "image-only": len(img_s)}
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5)

    def step(batch):
        out = model(batch)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)        # grads are transient: counted in the step's peak, not resident

    fns = {k: (lambda b=b: step(b)) for k, b in batches.items()}
    fns["unified"]()                           # create the AdamW state before measuring anything
    times = bench(fns, args.warmup, args.iters, device)
    resident = module_bytes(model) + optimizer_bytes(opt)
    peaks = {k: peak_above(f, device) for k, f in fns.items()} if args.memory else {}

    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as fc:
        fns["unified"]()
    flops = fc.get_total_flops()
    rate = matmul_rate(device, dtype)
    # analytic cross-check for the LLM alone: fwd 2NT + input-grad bwd 2NT + weight-grad bwd 2·N_train·T
    emb = model.llm.get_input_embeddings().weight     # LM head excluded too: applied at label positions only
    llm_all = [p for p in model.backbone().parameters() if p is not emb]
    n_llm = sum(p.numel() for p in llm_all)
    n_llm_train = sum(p.numel() for p in llm_all if p.requires_grad)
    toks = num_tokens(batches["unified"])
    model.eval()
    opt.state.clear()                          # free the AdamW state before the next section
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    t, mins = summarise(times)
    return {"times": t, "mins": mins, "raw": times, "n": n_samples,
            "tokens": {k: num_tokens(b) for k, b in batches.items()},
            "seq": {k: b["input_ids"].shape[1] for k, b in batches.items()}, "resident": resident, "peaks": peaks,
            "flops": flops, "rate": rate, "mfu": flops / t["unified"] / rate,
            "trainable": sum(p.numel() for p in params), "llm_flops": (4 * n_llm + 2 * n_llm_train) * toks,
            "n_llm": n_llm, "n_llm_train": n_llm_train}


# --------------------------------------------------------------------------- 2. text generation
def make_prompt(model, target: int) -> tuple[str, list[int]]:
    """A plain-text user prompt whose encoded chat sequence (with the generation prompt) is ~``target`` tokens."""
    c = model.cfg.llm

    def enc(text):
        return encode_conversation(model.tokenizer, [{"role": "user", "content": text}], model.num_image_tokens,
                                   c.num_image_queries, system=c.chat_system, max_length=c.max_length,
                                   add_generation_prompt=True).input_ids

    words = ["the", "quick", "brown", "fox", "reads", "the", "sign", "above", "the", "old", "shop", "door",
             "and", "writes", "it", "down", "again"]
    text, k = "", 0
    while len(enc(text)) < target:
        text += ("" if not text else " ") + words[k % len(words)]
        k += 1
    return text, enc(text)


@contextlib.contextmanager
def exact_new_tokens(llm, n: int):
    """Greedy runs of exactly ``n`` new tokens: ``min_new_tokens`` on the generation config masks EOS (and
    every other stop id passed to ``generate``) until ``n`` tokens exist; both paths read this config."""
    gc_ = llm.generation_config
    old = gc_.min_new_tokens
    gc_.min_new_tokens = n
    try:
        yield
    finally:
        gc_.min_new_tokens = old


def bench_text(model, args, device) -> dict:
    prompt, ids_list = make_prompt(model, args.prompt_tokens)
    ids = torch.tensor([ids_list], device=device)
    am = torch.ones_like(ids)
    stop = [model.ids.eos, model.ids.boi]
    n = args.tokens
    emb0 = model.embed(ids, None).detach()

    def ours():
        return model.generate_text(prompt=prompt, max_new_tokens=n)

    @torch.no_grad()
    def base():
        route = model.routing(emb0, am.bool(), [prompt]) if model.slide is not None else contextlib.nullcontext()
        with route:                # Slide-LoRA layers need their gates; without Slide-LoRA this is plain HF
            return model.llm.generate(input_ids=ids, attention_mask=am, max_new_tokens=n, do_sample=False,
                                      eos_token_id=stop, pad_token_id=model.ids.pad)

    with exact_new_tokens(model.llm, n):
        # check: both produce exactly n new tokens, and the same tokens
        seen = []
        orig = model.llm.generate

        def recording(*a, **k):
            out = orig(*a, **k)
            seen.append(out)
            return out
        model.llm.generate = recording
        try:
            ours()
        finally:
            del model.llm.generate
        ours_new = seen[0][0]                  # inputs_embeds only: generate returns the new tokens
        base_new = base()[0, ids.shape[1]:]
        if len(ours_new) != n or len(base_new) != n:
            raise RuntimeError(f"expected {n} new tokens, got ours {len(ours_new)}, baseline {len(base_new)}")
        same = bool((ours_new == base_new).all())
        times = bench({"ours": ours, "baseline": base}, args.warmup, args.text_iters or 5 * args.iters, device)
        peaks = {"ours": peak_above(ours, device), "baseline": peak_above(base, device)} if args.memory else {}
    t, mins = summarise(times)
    return {"times": t, "mins": mins, "raw": times, "prompt_tokens": ids.shape[1], "new_tokens": n, "same_tokens": same,
            "peaks": peaks, "resident": {"ours": module_bytes(model), "baseline": module_bytes(model.llm)}}


# --------------------------------------------------------------------------- 3. image generation
class Stopwatch:
    """Instance-level wrappers around the parts of ``generate_image``: seconds per part for the last call; keeps
    the mapped context of the last call (``ctx``) and the arguments of its ``decoder.sample`` call (``call``:
    masked image, mask, glyph ids -- what the real path computed)."""

    PARTS: ClassVar[dict] = {"prefill": ("embed", "_hidden", "image_context"), "denoise": ("decoder.sample",)}

    def __init__(self, model, device):
        self.model, self.device, self.last, self.ctx, self.call = model, device, {}, None, None
        for part, names in self.PARTS.items():
            for name in names:
                owner, attr = (model.decoder, "sample") if name == "decoder.sample" else (model, name)
                setattr(owner, attr, self._wrap(getattr(owner, attr), part, attr))

    def _wrap(self, fn, part, attr):
        sig = inspect.signature(fn) if attr == "sample" else None

        def timed(*a, **k):
            if sig is not None:
                self.call = sig.bind(*a, **k).arguments
            sync(self.device)
            t0 = time.perf_counter()
            out = fn(*a, **k)
            sync(self.device)
            self.last[part] = self.last.get(part, 0.0) + time.perf_counter() - t0
            if attr == "image_context":
                self.ctx = out.detach()
            return out
        return timed

    def remove(self):
        for names in self.PARTS.values():
            for name in names:
                owner, attr = (self.model.decoder, "sample") if name == "decoder.sample" else (self.model, name)
                del owner.__dict__[attr]


@contextlib.contextmanager
def channel_order(unet, c: int):
    """Scramble the inpainting inputs' channel order (ours = diffusers': noisy C, mask 1, masked-image latent C)
    by permuting ``conv_in``'s input columns in place, as a control for the equivalence check; restores them."""
    w = unet.conv_in.weight
    orig = w.data
    perm = list(range(c)) + [2 * c] + list(range(c, 2 * c))
    w.data = orig[:, perm].contiguous()
    try:
        yield
    finally:
        w.data = orig


@contextlib.contextmanager
def nonzero_extra_inputs(unet, c: int):
    """Fill ``conv_in``'s masked-latent and mask input columns (zero right after widening) with noise of the
    latent columns' scale for an equivalence check, and restore them."""
    w = unet.conv_in.weight
    orig = w.data.clone()
    g = torch.Generator().manual_seed(0)
    extra = torch.randn(w[:, c:].shape, generator=g).to(w.device, w.dtype) * orig[:, :c].float().std().to(w.dtype)
    w.data[:, c:] = extra
    try:
        yield
    finally:
        w.data.copy_(orig)


@contextlib.contextmanager
def live_condition_inputs(unet, c: int):
    """Like :func:`nonzero_extra_inputs`, but only ``conv_in``'s condition columns (after the first ``c``) that
    are all zero (freshly widened, or a glyph path not trained yet) get noise; trained ones are kept. Yields the
    number of columns filled; restores them."""
    w = unet.conv_in.weight
    orig = w.data.clone()
    dead = [i for i in range(c, w.shape[1]) if not bool(orig[:, i].any())]
    if dead:
        g = torch.Generator().manual_seed(0)
        noise = torch.randn(w[:, dead].shape, generator=g) * orig[:, :c].float().std()
        w.data[:, dead] = noise.to(w.device, w.dtype)
    try:
        yield len(dead)
    finally:
        w.data.copy_(orig)


def build_pipeline(model):
    from diffusers import StableDiffusionInpaintPipeline
    d = model.decoder
    sampler = d.sampler()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = StableDiffusionInpaintPipeline(vae=d.vae, unet=d.unet,
                                              scheduler=type(sampler).from_config(sampler.config),
                                              text_encoder=None, tokenizer=None, safety_checker=None,
                                              feature_extractor=None, requires_safety_checker=False)
    # the pipeline's __init__ rewrites steps_offset 0 -> 1 ("outdated config"); use our sampler's config exactly
    pipe.scheduler = type(sampler).from_config(sampler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe


class DiffusersLoop:
    """The denoising loop of diffusers' pipelines (``StableDiffusionInpaintPipeline.__call__`` minus prompt
    encoding and mask preparation) on ``decoder``'s UNet (+ VAE) and a fresh scheduler from its sampler's config,
    for decoders the pipeline cannot drive (pixel space, extra glyph channels). It takes the extra UNet input
    channels precomputed: ``cond`` for the conditional branch, ``null_cond`` for the null branch (CFG batch
    [null, cond], diffusers' order). Latents stay float32 and the UNet input is cast to its dtype, as ours."""

    def __init__(self, decoder):
        from diffusers.image_processor import VaeImageProcessor
        sampler = decoder.sampler()
        self.unet, self.vae = decoder.unet, decoder.vae
        self.scheduler = type(sampler).from_config(sampler.config)
        self.image_processor = VaeImageProcessor(vae_scale_factor=decoder.vae_factor)

    @torch.no_grad()
    def __call__(self, prompt_embeds, negative_prompt_embeds, cond, null_cond, height, width, steps, guidance,
                 generator=None, output_type="pil"):
        from diffusers.utils.torch_utils import randn_tensor
        unet, sched = self.unet, self.scheduler
        device, dtype = prompt_embeds.device, unet.dtype
        sched.set_timesteps(steps, device=device)
        do_cfg = guidance > 1.0
        emb = torch.cat([negative_prompt_embeds, prompt_embeds]) if do_cfg else prompt_embeds
        extra = None if cond is None else torch.cat([null_cond, cond]) if do_cfg else cond
        f = 2 ** (len(self.vae.config.block_out_channels) - 1) if self.vae is not None else 1
        shape = (prompt_embeds.shape[0], unet.config.out_channels, height // f, width // f)
        latents = randn_tensor(shape, generator=generator, device=device, dtype=torch.float32)
        latents = latents * sched.init_noise_sigma
        for t in sched.timesteps:
            x = torch.cat([latents] * 2) if do_cfg else latents
            x = sched.scale_model_input(x, t).to(dtype)
            if extra is not None:
                x = torch.cat([x, extra.to(dtype)], dim=1)
            noise_pred = unet(x, t, encoder_hidden_states=emb.to(dtype)).sample.float()
            if do_cfg:
                uncond, text = noise_pred.chunk(2)
                noise_pred = uncond + guidance * (text - uncond)
            latents = sched.step(noise_pred, t, latents).prev_sample
        if self.vae is not None:
            image = self.vae.decode(latents.to(self.vae.dtype) / self.vae.config.scaling_factor).sample
        else:
            image = latents
        return self.image_processor.postprocess(image.float(), output_type=output_type)


def image_baseline(model, want: str = "auto") -> str:
    """``pipeline`` (diffusers' inpainting pipeline) for a latent inpainting decoder without a glyph path, else
    ``loop`` (:class:`DiffusersLoop`); ``want`` forces one (pipeline on a glyph decoder: SystemExit)."""
    d = model.decoder
    if want == "pipeline" and (d.glyph is not None or not d.cfg.inpaint):
        raise SystemExit("--image-baseline pipeline: StableDiffusionInpaintPipeline cannot drive this decoder "
                         "(glyph channels or no inpainting input); use --image-baseline loop")
    if want != "auto":
        return want
    return "pipeline" if d.vae is not None and d.glyph is None and d.cfg.inpaint else "loop"


BASELINE_LABELS = {"pipeline": "diffusers StableDiffusionInpaintPipeline",
                   "loop": "diffusers sampling loop, same UNet + scheduler"}


def _pipeline_side(model, ctx, null, steps, guidance, device):
    """Baseline ``pipeline``: the timed call and the equivalence check."""
    d = model.decoder
    h, w = model.cfg.decoder.hw
    blank, full = Image.new("RGB", (w, h), (128, 128, 128)), Image.new("L", (w, h), 255)
    pipe = build_pipeline(model)

    def base(**kw):
        return pipe(prompt_embeds=ctx, negative_prompt_embeds=null, image=blank, mask_image=full, height=h,
                    width=w, num_inference_steps=steps, guidance_scale=guidance,
                    generator=torch.Generator().manual_seed(0), **kw).images

    # equivalence: same noise, same masked-image latent (the pipeline would sample it, we take the mode);
    # conv_in's mask / masked-latent columns made non-zero for the check, so their order matters
    masked, m = torch.zeros(1, 3, h, w, device=device), torch.ones(1, 1, h, w, device=device)
    with torch.no_grad(), nonzero_extra_inputs(d.unet, d.latent_channels):
        ref = d.sample(ctx, model.null_context, masked, m, steps, guidance, torch.Generator().manual_seed(0))
        ref = ref.float().cpu() * 0.5 + 0.5
        z = d.encode(masked, sample=False)
        got = base(output_type="pt", masked_image_latents=z)
        with channel_order(d.unet, d.latent_channels):  # control: a wrong channel order must differ
            unordered = base(output_type="pt", masked_image_latents=z)
    check = {"max_abs_diff": float((ref - got.float().cpu()).abs().max()),
             "max_abs_diff_control": float((ref - unordered.float().cpu()).abs().max()),
             "control": "inpainting channel order scrambled",
             "same_timesteps": torch.equal(d.sampler().timesteps.cpu(), pipe.scheduler.timesteps.cpu()),
             "filled_columns": d.unet.conv_in.in_channels - d.latent_channels}
    return base, check


def _loop_side(model, ctx, null, call, steps, guidance, device):
    """Baseline ``loop``: the timed call and the equivalence check. ``call``: the arguments of our
    ``decoder.sample`` call (masked image, mask, glyph ids as the real path built them)."""
    d = model.decoder
    h, w = model.cfg.decoder.hw
    masked, mask, glyph_ids = call["masked"], call["mask"], call.get("glyph_ids")
    if d.glyph is not None and (glyph_ids is None or not bool((glyph_ids >= 0).any())):
        raise RuntimeError(f"the glyph path got no characters from the prompt {IMAGE_PROMPT!r}")
    with torch.no_grad():      # the condition channels, once: the baseline is given them
        cond = d._cond_input(masked, mask, glyph_ids)
        null_cond = d._cond_input(masked, mask, None) if d.glyph is not None else cond
    loop = DiffusersLoop(d)

    def base(cond=cond, **kw):
        return loop(ctx, null, cond, null_cond, h, w, steps, guidance, torch.Generator().manual_seed(0), **kw)

    if cond is None:                                   # no condition channels: control = the null context
        control, ctrl_kw = "null context for the context", {}
    elif d.glyph is not None:                          # control: the glyph map zeroed (no characters placed)
        control, ctrl = "glyph map zeroed", cond.clone()
        ctrl[:, cond.shape[1] - d.glyph.channels:] = 0
        ctrl_kw = {"cond": ctrl}
    else:                                              # control: mask / masked image channel order scrambled
        c = d.latent_channels
        control, ctrl_kw = "condition channel order scrambled", {"cond": cond[:, list(range(1, c + 1)) + [0]]}
    with torch.no_grad(), live_condition_inputs(d.unet, d.latent_channels) as filled:
        ref = d.sample(ctx, model.null_context, masked, mask, steps, guidance, torch.Generator().manual_seed(0),
                       glyph_ids=glyph_ids).float().cpu() * 0.5 + 0.5
        got = base(output_type="pt")
        if cond is None:
            other = loop(null.expand_as(ctx), null, None, None, h, w, steps, guidance,
                         torch.Generator().manual_seed(0), output_type="pt")
        else:
            other = base(output_type="pt", **ctrl_kw)
    check = {"max_abs_diff": float((ref - got.float().cpu()).abs().max()),
             "max_abs_diff_control": float((ref - other.float().cpu()).abs().max()), "control": control,
             "same_timesteps": torch.equal(d.sampler().timesteps.cpu(), loop.scheduler.timesteps.cpu()),
             "filled_columns": filled}
    return base, check


def bench_image(model, args, device, note: str = "", kind: str | None = None) -> dict:
    d, dc = model.decoder, model.cfg.decoder
    kind = kind or image_baseline(model, getattr(args, "image_baseline", "auto"))
    steps = args.steps or dc.default_steps
    guidance = dc.default_guidance if getattr(args, "guidance", None) is None else args.guidance
    prompt = IMAGE_PROMPT
    watch = Stopwatch(model, device)
    try:
        def ours():
            watch.last = {}
            return model.generate_image(prompt, steps=steps, guidance=guidance, seed=0)

        ours()
        ctx, null = watch.ctx, model.null_context.detach()[None].to(watch.ctx.dtype)
        if kind == "pipeline":
            base, check = _pipeline_side(model, ctx, null, steps, guidance, device)
        else:
            base, check = _loop_side(model, ctx, null, dict(watch.call), steps, guidance, device)

        parts = []

        def ours_timed():
            ours()
            parts.append(dict(watch.last))
        times = bench({"ours": ours_timed, "baseline": base}, args.warmup, args.iters, device)
        parts = parts[-args.iters:] if args.iters else parts
        peaks = {"ours": peak_above(ours, device), "baseline": peak_above(base, device)} if args.memory else {}
    finally:
        watch.remove()
    t, mins = summarise(times)
    return {"times": t, "mins": mins, "raw": times, "steps": steps, "guidance": guidance, "resolution": tuple(dc.hw),
            "latent_hw": tuple(d.latent_hw), "note": note, "baseline": kind, "prompt": prompt,
            "sampler": type(d.sampler()).__name__, "glyph": d.glyph is not None, "vae": d.vae is not None, **check,
            "prefill": med([p.get("prefill", 0.0) for p in parts]),
            "denoise": med([p.get("denoise", 0.0) for p in parts]), "peaks": peaks,
            "resident": {"ours": module_bytes(model), "baseline": module_bytes(d.unet, d.vae)}}


# --------------------------------------------------------------------------- report
def fmt_mb(b) -> str:
    return "–" if b is None else f"{b / MB:,.1f} MB"


def fmt_flops(x: float) -> str:
    for unit, k in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6)):
        if x >= k:
            return f"{x / k:.2f} {unit}"
    return f"{x:.0f} "


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__.split('+')[0]}"
    return f"{os.cpu_count()}-core CPU ({platform.machine()}, {torch.get_num_threads()} torch threads), " \
           f"torch {torch.__version__.split('+')[0]}"


def ms(x: float) -> str:
    return f"{x * 1e3:,.1f} ms"


def report(res: dict, args, device, dtype) -> str:
    dt = str(dtype).replace("torch.", "")
    mem = ("CUDA max_memory_allocated above the allocation before the call" if device.type == "cuda" else
           "peak running sum of the torch CPU-allocator records (alloc +, free -) in a "
           "torch.profiler(profile_memory=True) trace; allocator bytes, not process RSS")
    L = [f"Command: `{args.command}`  ",
         f"Machine: {device_name(device)}; dtype {dt}; date {args.date}  ",
         ((f"Model: `{args.model}`. " if args.model else
           f"Config: `{os.path.relpath(args.config, ROOT)}`{' ' + ' '.join(args.set) if args.set else ''}. ") +
         f"Times: median (min) of {args.iters} timed round(s) ({args.text_iters or 5 * args.iters} for text "
          f"generation) after {args.warmup} warm-up round(s); ours and baseline interleaved A B, B A, ….  "),
         f"Memory: resident = weights + buffers (+ AdamW state); peak = {mem if args.memory else 'not measured'}.",
         "", "| figure | ours | baseline | ratio (of medians) | per-round ratio, median [IQR] | target |",
         "|---|---:|---:|---:|---:|---|"]
    if "train" in res:
        r = res["train"]
        t = r["times"]
        split = t["text-only"] + t["image-only"]
        raw = r["raw"]
        L.append(f"| training step, samples/s (mixed batch of {r['n']['unified']}) | "
                 f"{r['n']['unified'] / t['unified']:.2f} | {r['n']['unified'] / split:.2f} (text-only + "
                 f"image-only) | {t['unified'] / split:.3f}× time | "
                 f"{paired(raw['unified'], [a + b for a, b in zip(raw['text-only'], raw['image-only'])])} | "
                 f"– (MFU {100 * r['mfu']:.1f} %) |")
    if "text" in res:
        r = res["text"]
        t = r["times"]
        x = t["baseline"] / t["ours"]
        L.append(f"| text generation, tokens/s | {r['new_tokens'] / t['ours']:.1f} | "
                 f"{r['new_tokens'] / t['baseline']:.1f} (HF generate, input_ids) | {x:.3f}× speed | "
                 f"{paired(r['raw']['baseline'], r['raw']['ours'])} | ≥ 0.95× {'✓' if x >= 0.95 else '✗'} |")
    if "image" in res:
        r = res["image"]
        t = r["times"]
        x = t["ours"] / t["baseline"]
        h, w = r["resolution"]
        L.append(f"| image generation, s/image ({h}×{w} px, {r['steps']} steps, CFG {r['guidance']:g}) | "
                 f"{t['ours']:.3f} | {t['baseline']:.3f} ({BASELINE_LABELS[r['baseline']]}) | {x:.3f}× time | "
                 f"{paired(r['raw']['ours'], r['raw']['baseline'])} | ≤ 1.10× {'✓' if x <= 1.10 else '✗'} |")
    if "train" in res:
        r = res["train"]
        t, mn, p = r["times"], r["mins"], r["peaks"]
        L += ["", (f"**Training step** (forward + backward + AdamW step; batch of {r['n']['unified']} samples cycling "
              f"text-output / text-to-image / edit; {r['trainable'] / 1e6:,.2f} M trainable parameters). Baseline: "
              f"a text-only step on the text samples plus an image-only step on the image samples."), "",
              "| step | samples | seq len (padded) | tokens | time | samples/s | peak above resident |",
              "|---|---:|---:|---:|---:|---:|---:|"]
        for k in ("unified", "text-only", "image-only"):
            L.append(f"| {k} | {r['n'][k]} | {r['seq'][k]} | {r['tokens'][k]} | {ms(t[k])} ({ms(mn[k])}) | "
                     f"{r['n'][k] / t[k]:.2f} | {fmt_mb(p.get(k))} |")
        split = t["text-only"] + t["image-only"]
        L += [f"| text-only + image-only | {r['n']['unified']} | | | {ms(split)} | {r['n']['unified'] / split:.2f} | |",
              "", (f"Ratio unified / (text-only + image-only) = **{t['unified'] / split:.3f}**; resident "
              f"{fmt_mb(r['resident'])}.  "),
              (f"FLOPs of one unified step (FlopCounterMode, forward + backward): {fmt_flops(r['flops'])}FLOP; "
              f"of these the LLM backbone, analytic (4·N + 2·N_trainable)·T with N = {r['n_llm'] / 1e6:,.2f} M, "
              f"N_trainable = {r['n_llm_train'] / 1e6:,.2f} M, T = {r['tokens']['unified']} tokens: "
              f"{fmt_flops(r['llm_flops'])}FLOP. Measured {dt} matmul rate: {fmt_flops(r['rate'])}FLOP/s. "
              f"**MFU {100 * r['mfu']:.1f} %**.")]
    if "text" in res:
        r = res["text"]
        t, mn, p, rs = r["times"], r["mins"], r["peaks"], r["resident"]
        L += ["", (f"**Text generation** (greedy, batch 1, prompt {r['prompt_tokens']} tokens, exactly "
              f"{r['new_tokens']} new tokens for both; identical tokens: {'yes' if r['same_tokens'] else 'NO'})."), "",
              "| path | time | tokens/s | resident | peak above resident |", "|---|---:|---:|---:|---:|",
              (f"| ours: `model.generate_text` (tokenise, embed, HF generate(inputs_embeds), decode) | "
              f"{ms(t['ours'])} ({ms(mn['ours'])}) | {r['new_tokens'] / t['ours']:.1f} | {fmt_mb(rs['ours'])} | "
              f"{fmt_mb(p.get('ours'))} |"),
              (f"| baseline: `llm.generate(input_ids)` | {ms(t['baseline'])} ({ms(mn['baseline'])}) | "
              f"{r['new_tokens'] / t['baseline']:.1f} | {fmt_mb(rs['baseline'])} | {fmt_mb(p.get('baseline'))} |")]
    if "image" in res:
        r = res["image"]
        t, mn, p, rs = r["times"], r["mins"], r["peaks"], r["resident"]
        other = t["ours"] - r["prefill"] - r["denoise"]
        h, w = r["resolution"]
        kind = r["baseline"]
        what = ("pixel space" if not r["vae"] else "latent (VAE)") + (", glyph path" if r["glyph"] else "")
        if kind == "pipeline":
            how = ("Baseline: diffusers' `StableDiffusionInpaintPipeline` built from the same UNet, VAE and sampler "
                   "config, given our mapped context as `prompt_embeds`, our null context as "
                   "`negative_prompt_embeds`, a full mask. Same computation, checked before timing: max |Δ| = "
                   f"{r['max_abs_diff']:.1e} (pixels in [0, 1]) between our sampler and the pipeline fed the same "
                   "noise and masked-image latent")
            base_row = "baseline: `StableDiffusionInpaintPipeline(prompt_embeds=…)`"
        else:
            how = ("Baseline: diffusers' sampling loop on the same UNet (scheduler `from_config` of our sampler, "
                   "`set_timesteps`, `randn_tensor` × `init_noise_sigma`, `scale_model_input`, CFG batch [null, "
                   "cond], `unet(…).sample`, `scheduler.step(…).prev_sample`, decode, `VaeImageProcessor."
                   "postprocess`), given our mapped context, null context and the condition channels (mask, masked "
                   f"image{', glyph map' if r['glyph'] else ''}) precomputed once; ours builds them per call "
                   f"{'(glyph ids and map included) ' if r['glyph'] else ''}-- the ratio is our whole overhead "
                   f"(prompt encoding, LLM prefill, mapper). Same computation, checked before timing: max |Δ| = "
                   f"{r['max_abs_diff']:.1e} (pixels in [0, 1]) between `decoder.sample` and the loop fed the same "
                   f"noise and condition")
            base_row = "baseline: diffusers sampling loop (precomputed condition)"
        filled = ("" if not r["filled_columns"] else
                  f"; `conv_in`'s {r['filled_columns']} condition columns replaced by noise for the check"
                  if kind == "pipeline" else
                  f"; {r['filled_columns']} all-zero `conv_in` condition column(s) given noise for the check")
        L += ["", (f"**Image generation** ({h}×{w} px output, latent {r['latent_hw'][0]}×{r['latent_hw'][1]}, {what}; "
              f"{r['steps']} {r['sampler']} steps, CFG {r['guidance']:g}, 1 image, prompt `{r['prompt']}`"
              f"{'; ' + r['note'] if r['note'] else ''}). {how} (control, {r['control']}: "
              f"{r['max_abs_diff_control']:.1e}){filled}; identical timesteps: "
              f"{'yes' if r['same_timesteps'] else 'NO'}."),
              "", ("| path | time | prefill (embed + LLM + mapper) | denoise (condition + UNet loop + decode) | "
              "other | resident | peak above resident |"), "|---|---:|---:|---:|---:|---:|---:|",
              (f"| ours: `model.generate_image` | {ms(t['ours'])} ({ms(mn['ours'])}) | {ms(r['prefill'])} | "
              f"{ms(r['denoise'])} | {ms(other)} | {fmt_mb(rs['ours'])} | {fmt_mb(p.get('ours'))} |"),
              (f"| {base_row} | {ms(t['baseline'])} "
              f"({ms(mn['baseline'])}) | – | – | – | {fmt_mb(rs['baseline'])} | {fmt_mb(p.get('baseline'))} |")]
    return "\n".join(L) + "\n"


# --------------------------------------------------------------------------- main
def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--config", default=None, help="model YAML, random weights (default: the tiny preset)")
    src.add_argument("--model", default=None, metavar="DIR|embedded",
                     help="a save_pretrained directory, or 'embedded' (textharmony/assets/embedded)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="dotted config override (with --config only)")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                    help="auto: bfloat16 on CUDA, float32 on CPU")
    ap.add_argument("--batch", type=int, default=6, help="training samples per mixed batch (>= 3)")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=0, help="diffusion steps (0: the config's default_steps)")
    ap.add_argument("--guidance", type=float, default=None, help="CFG scale (default: the config's default_guidance)")
    ap.add_argument("--image-baseline", default="auto", choices=IMAGE_BASELINES,
                    help="auto: the inpainting pipeline for a latent decoder without a glyph path, else the "
                         "diffusers sampling loop")
    ap.add_argument("--tokens", type=int, default=64, help="new tokens per text generation")
    ap.add_argument("--text-iters", type=int, default=0,
                    help="timed rounds for text generation (0: 5 x --iters; it is cheap and the noisiest figure)")
    ap.add_argument("--prompt-tokens", type=int, default=128, help="prompt length for text generation")
    ap.add_argument("--only", default=",".join(SECTIONS), help="comma list of train,text,image")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    ap.add_argument("--no-memory", dest="memory", action="store_false", help="skip the peak-memory runs")
    ap.add_argument("--markdown", metavar="OUT", help="also write the report to this file")
    ap.add_argument("--date", default=datetime.date.today().isoformat(), help="date for the report (default: today)")
    args = ap.parse_args(argv)
    args.command = "python benchmarks/speed.py " + " ".join(shlex.quote(a) for a in (
        sys.argv[1:] if argv is None else argv))
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    bad = [s for s in only if s not in SECTIONS]
    if bad:
        ap.error(f"--only takes {','.join(SECTIONS)}; got {','.join(bad)}")
    args.only = only
    if args.model and args.set:
        ap.error("--set applies to --config only, not to --model")
    if not args.model and not args.config:
        args.config = TINY
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    dtype = (torch.bfloat16 if device.type == "cuda" else torch.float32) if args.dtype == "auto" else \
        getattr(torch, args.dtype)
    res = {}
    model = load_model(args, device, dtype)
    if "train" in args.only:
        res["train"] = bench_train(model, args, device, dtype)
        print(f"train: {res['train']['times']}", file=sys.stderr)
    if "text" in args.only:
        res["text"] = bench_text(model, args, device)
        print(f"text: {res['text']['times']}", file=sys.stderr)
    if "image" in args.only:
        note = ""
        kind = image_baseline(model, args.image_baseline)
        if kind == "pipeline" and model.decoder.vae is None:      # forced on a pixel-space decoder
            if args.model:
                raise SystemExit("--image-baseline pipeline needs a latent (VAE) decoder; this model's is pixel "
                                 "space (use --image-baseline loop)")
            extra = latent_image_overrides(model.cfg)
            del model
            gc.collect()
            model = build_model(args.config, args.set + extra, device, dtype)
            note = "pixel-space config: measured with a tiny VAE (f = 2) and a 9-channel latent UNet"
        if args.dtype == "auto":        # as the pipeline's dtype auto: a bf16 UNet on a CPU with native bf16
            from textharmony.pipeline import fast_cpu_unet
            if fast_cpu_unet(model, device):
                note = "; ".join(x for x in (note, "the UNet in bfloat16, channels-last (the pipeline's dtype auto "
                                             "on this CPU; --dtype float32 for all-float32)") if x)
        res["image"] = bench_image(model, args, device, note, kind)
        print(f"image: {res['image']['times']}", file=sys.stderr)
    text = report(res, args, device, dtype)
    print(text)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(text)
    res["markdown"] = text
    return res


if __name__ == "__main__":
    main()
