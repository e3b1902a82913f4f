"""Image decoder: diffusers ``UNet2DConditionModel`` (+ optional ``AutoencoderKL``) conditioned on the
LLM's mapped visual tokens through ``encoder_hidden_states``.

Inpainting-style input (editing and text-to-image share it): ``concat(noisy, mask, masked_image_latent)``
= 2C+1 channels (9 with a VAE, 7 in pixel space) -- diffusers' order, so SD-inpainting UNets load as they are. A pretrained C-channel UNet gets its
``conv_in`` widened with zero-initialised weights, so it starts out computing exactly what it did.
With ``decoder.glyph_dim`` the glyph path's map (:mod:`textharmony.model.glyph`, ``glyph_dim + 3`` channels)
follows those channels: which character goes where. Outputs are R x R, or Rh x Rw with ``decoder.height``.
"""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from diffusers import (AutoencoderKL, DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler,
                       UNet2DConditionModel)
from diffusers.training_utils import compute_snr
from torch import nn

from ..config import ConfigError, DecoderConfig, load_pretrained
from ..glyph_layout import default_advance
from .glyph import GlyphLayout, GlyphRender


def _load(cls, name: str, sub: str, key: str):
    """Load ``cls`` from a dir/hub id; SD-style repos keep each part in a subfolder ``sub``."""
    if os.path.isdir(name) and not os.path.isdir(os.path.join(name, sub)):
        return load_pretrained(cls.from_pretrained, name, key)
    return load_pretrained(cls.from_pretrained, name, key, subfolder=sub)


def widen_conv_in(unet: UNet2DConditionModel, in_channels: int) -> None:
    """Give ``unet`` ``in_channels`` inputs; new input channels get zero weights (no-op at init)."""
    old = unet.conv_in
    if old.in_channels == in_channels:
        return
    new = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding,
                    dtype=old.weight.dtype, device=old.weight.device)
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, : old.in_channels] = old.weight
        new.bias.copy_(old.bias)
    unet.conv_in = new
    unet.register_to_config(in_channels=in_channels)


def warm_start_unet(decoder: "ImageDecoder", directory: str) -> tuple[int, int]:
    """Start ``decoder``'s UNet from the UNet saved in ``directory`` (a diffusers dir): every tensor of the
    same name and shape is copied; ``conv_in`` keeps the noisy-latent and inpainting input channels they share
    (diffusers' order) and gives the others (a different glyph map) zero weights, so the warm start draws
    what it drew before until it learns the new channels. -> (tensors copied, tensors in the UNet)."""
    src = _load(UNet2DConditionModel, directory, "unet", "model.overrides.decoder.init_unet").state_dict()
    own = decoder.unet.state_dict()
    base = 2 * decoder.latent_channels + 1 if decoder.cfg.inpaint else decoder.latent_channels
    n = 0
    with torch.no_grad():
        for k, v in own.items():
            w = src.get(k)
            if w is None:
                continue
            if w.shape == v.shape:
                v.copy_(w)
                n += 1
            elif k == "conv_in.weight" and w.shape[0] == v.shape[0] and w.shape[1] >= base and v.shape[1] >= base:
                v.zero_()
                v[:, :base] = w[:, :base]
                n += 1
    return n, len(own)


class ImageDecoder(nn.Module):
    def __init__(self, unet: UNet2DConditionModel, vae: AutoencoderKL | None, scheduler: DDPMScheduler,
                 cfg: DecoderConfig, glyph: GlyphLayout | GlyphRender | None = None):
        super().__init__()
        self.unet, self.vae, self.scheduler, self.cfg = unet, vae, scheduler, cfg
        self.glyph = glyph
        if vae is not None:
            vae.requires_grad_(False)
        self.latent_channels = vae.config.latent_channels if vae is not None else 3
        self.vae_factor = 2 ** (len(vae.config.block_out_channels) - 1) if vae is not None else 1
        want = 2 * self.latent_channels + 1 if cfg.inpaint else self.latent_channels
        want += glyph.channels if glyph is not None else 0
        if unet.config.in_channels == self.latent_channels and want != unet.config.in_channels:
            widen_conv_in(unet, want)
        if unet.config.in_channels != want:
            raise ConfigError(f"decoder UNet has {unet.config.in_channels} input channels; expected {want} "
                              f"(latent channels {self.latent_channels}, inpaint={cfg.inpaint}, glyph channels "
                              f"{glyph.channels if glyph is not None else 0})")
        if unet.config.out_channels != self.latent_channels:
            raise ConfigError(f"decoder UNet outputs {unet.config.out_channels} channels, the latent space has "
                              f"{self.latent_channels}")
        self._samplers: dict[str, object] = {}
        self._empty: dict = {}

    # ------------------------------------------------------------------ build
    @classmethod
    def build(cls, cfg: DecoderConfig, tokenizer=None) -> "ImageDecoder":
        """Parts from ``cfg``; the glyph path (``cfg.glyph_dim`` > 0) embeds ``tokenizer``'s ids, each
        character token with its advance (:func:`textharmony.glyph_layout.default_advance`)."""
        if cfg.unet:
            unet = _load(UNet2DConditionModel, cfg.unet, "unet", "decoder.unet")
        elif cfg.unet_arch:
            unet = UNet2DConditionModel(**cfg.unet_arch)
        else:
            raise ConfigError("config key 'decoder.unet' (hub id or dir) or 'decoder.unet_arch' is required")
        vae = None
        if cfg.vae:
            vae = _load(AutoencoderKL, cfg.vae, "vae", "decoder.vae")
        elif cfg.vae_arch:
            vae = AutoencoderKL(**cfg.vae_arch)
        if cfg.scheduler:
            scheduler = _load(DDPMScheduler, cfg.scheduler, "scheduler", "decoder.scheduler")
        else:
            scheduler = DDPMScheduler(**cfg.scheduler_arch)
            # make every default explicit: otherwise ``from_config`` into the sampler would use the
            # sampler's own defaults (e.g. timestep_spacing) before a save and the saved values after
            scheduler = DDPMScheduler.from_config({k: v for k, v in scheduler.config.items() if k[0] != "_"})
        glyph = None
        if cfg.glyph_dim:
            if tokenizer is None:
                raise ConfigError("'decoder.glyph_dim' needs the model's tokenizer")
            glyph = GlyphLayout(len(tokenizer), cfg.glyph_dim, cfg.glyph_cell)
            glyph.set_advances({i: default_advance(t) for t, i in tokenizer.get_vocab().items() if len(t) == 1})
        elif cfg.glyph_font:
            if tokenizer is None:
                raise ConfigError("'decoder.glyph_font' needs the model's tokenizer")
            from ..data.synth_render import SynthError, resolve_font
            try:
                font = resolve_font(cfg.glyph_font)
            except SynthError:
                raise ConfigError(f"config key 'decoder.glyph_font': font {cfg.glyph_font!r} not found (a file, or a "
                                  f"file stem in /usr/share/fonts); install it (Debian: apt install fonts-wqy-zenhei) "
                                  f"or give a font file's path") from None
            glyph = GlyphRender(tokenizer.convert_ids_to_tokens(list(range(len(tokenizer)))), font)
        return cls(unet, vae, scheduler, cfg, glyph)

    @property
    def cross_attention_dim(self) -> int:
        return self.unet.config.cross_attention_dim

    @property
    def latent_hw(self) -> tuple[int, int]:
        h, w = self.cfg.hw
        return h // self.vae_factor, w // self.vae_factor

    # ------------------------------------------------------------------ latent space
    def encode(self, images: torch.Tensor, sample: bool = True, generator=None) -> torch.Tensor:
        """(G, 3, R, R) in [-1, 1] -> (G, C, R/f, R/f)."""
        if self.vae is None:
            return images
        dist = self.vae.encode(images.to(self.vae.dtype)).latent_dist
        z = dist.sample(generator) if sample else dist.mode()
        return z * self.vae.config.scaling_factor

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        if self.vae is None:
            return latents.clamp(-1, 1)
        return self.vae.decode(latents.to(self.vae.dtype) / self.vae.config.scaling_factor).sample.clamp(-1, 1)

    def _empty_latent(self, like: torch.Tensor) -> torch.Tensor:
        """Latent of the all-zero masked image of text-to-image rows, (1, C, r, r); computed once
        (the VAE is frozen) -- at SD scale a VAE encode costs more than a UNet forward."""
        key = (like.shape[-1], like.dtype, like.device)
        if self._empty.get("key") != key:
            self._empty = {"key": key, "z": self.encode(torch.zeros_like(like[:1]), sample=False)}
        return self._empty["z"]

    def _cond_input(self, masked: torch.Tensor, mask: torch.Tensor, glyph_ids: torch.Tensor | None = None):
        """Mask (G,1,R,R) + masked image (G,3,R,R) [+ glyph ids (G, Lg), -1-padded] -> (G, 1+C[+Cg], r, r)
        extra UNet input channels (None when there are none)."""
        parts = [self._inpaint_input(masked, mask)] if self.cfg.inpaint else []
        if self.glyph is not None:
            m = F.interpolate(mask.float(), size=self.latent_hw, mode="nearest")
            ids = glyph_ids if glyph_ids is not None else torch.full((mask.shape[0], 0), -1, dtype=torch.long)
            parts.append(self.glyph(ids.to(m.device), m))
        if not parts:
            return None
        dt = parts[0].dtype
        return torch.cat([p.to(dt) for p in parts], 1)

    def _inpaint_input(self, masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.vae is None:
            z = masked
        else:
            empty = masked.flatten(1).abs().amax(1) == 0
            if empty.all():
                z = self._empty_latent(masked).expand(masked.shape[0], -1, -1, -1)
            else:
                z = self.encode(masked, sample=False)
                if empty.any():
                    z = torch.where(empty[:, None, None, None], self._empty_latent(masked), z)
        m = F.interpolate(mask.to(z.dtype), size=z.shape[-2:], mode="nearest")
        return torch.cat([m, z], dim=1)

    # ------------------------------------------------------------------ training
    def loss(self, target: torch.Tensor, masked: torch.Tensor, mask: torch.Tensor,
             context: torch.Tensor, glyph_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Denoising MSE (epsilon or v per scheduler), optional min-SNR weighting. All images (G,·,R,R);
        ``glyph_ids`` (G, Lg) the glyph path's characters (it learns through this loss)."""
        with torch.no_grad():
            x0 = self.encode(target)
        cond = self._cond_input(masked, mask, glyph_ids)
        noise = torch.randn_like(x0)
        t = torch.randint(0, self.scheduler.config.num_train_timesteps, (x0.shape[0],), device=x0.device)
        xt = self.scheduler.add_noise(x0, noise, t)
        inp = torch.cat([xt, cond], 1) if cond is not None else xt
        pred = self.unet(inp.to(self.unet.dtype), t, encoder_hidden_states=context.to(self.unet.dtype)).sample
        ptype = self.scheduler.config.prediction_type
        goal = noise if ptype == "epsilon" else self.scheduler.get_velocity(x0, noise, t)
        mse = F.mse_loss(pred.float(), goal.float(), reduction="none").mean(dim=(1, 2, 3))
        if self.cfg.min_snr_gamma > 0:
            snr = compute_snr(self.scheduler, t)
            w = torch.clamp(snr, max=self.cfg.min_snr_gamma) / (snr + 1 if ptype == "v_prediction" else snr)
            mse = mse * w
        return mse.mean()

    # ------------------------------------------------------------------ sampling
    def sampler(self, name: str | None = None):
        """Sampling scheduler built once from the training scheduler's config and reused."""
        name = name or self.cfg.sampler
        if name not in self._samplers:
            cls = {"dpm": DPMSolverMultistepScheduler, "ddim": DDIMScheduler}.get(name)
            if cls is None:
                raise ConfigError(f"config key 'decoder.sampler' must be 'dpm' or 'ddim', got {name!r}")
            self._samplers[name] = cls.from_config(self.scheduler.config)
        return self._samplers[name]

    @torch.no_grad()
    def sample(self, context: torch.Tensor, null_context: torch.Tensor, masked: torch.Tensor,
               mask: torch.Tensor, steps: int, guidance: float, generator: torch.Generator | None = None,
               sampler: str | None = None, progress=None, glyph_ids: torch.Tensor | None = None) -> torch.Tensor:
        """context (G, T, d); null_context (T, d); masked (G,3,R,R); mask (G,1,R,R); glyph_ids (G, Lg) ->
        images (G,3,R,R) in [-1,1].

        Classifier-free guidance runs the conditional and null contexts in one UNet batch; the null branch also
        has no glyphs (as training's condition drop).
        """
        sched = self.sampler(sampler)
        sched.set_timesteps(steps, device=context.device)
        g = context.shape[0]
        shape = (g, self.latent_channels, *self.latent_hw)
        dtype = self.unet.dtype
        x = torch.randn(shape, generator=generator, device="cpu", dtype=torch.float32).to(context.device)
        x = x * sched.init_noise_sigma
        cond = self._cond_input(masked, mask, glyph_ids)
        cond = cond.to(dtype) if cond is not None else None
        use_cfg = guidance is not None and guidance > 1.0
        ctx = context.to(dtype)
        if use_cfg:
            ctx = torch.cat([ctx, null_context.to(dtype).unsqueeze(0).expand(g, -1, -1)])
            if cond is not None:
                null = cond.clone()
                if self.glyph is not None:          # no characters: an empty glyph map (its last channels)
                    null[:, cond.shape[1] - self.glyph.channels:] = 0
                cond = torch.cat([cond, null])
        for t in (progress(sched.timesteps) if progress else sched.timesteps):
            xin = torch.cat([x, x]) if use_cfg else x
            xin = sched.scale_model_input(xin, t)
            if cond is not None:
                xin = torch.cat([xin.to(dtype), cond], 1)
            eps = self.unet(xin.to(dtype), t, encoder_hidden_states=ctx).sample.float()
            if use_cfg:
                e_c, e_u = eps.chunk(2)
                eps = e_u + guidance * (e_c - e_u)
            x = sched.step(eps, t, x).prev_sample
        return self.decode(x).float()

    # ------------------------------------------------------------------ persistence
    def save_pretrained(self, directory: str) -> None:
        self.unet.save_pretrained(os.path.join(directory, "unet"))
        if self.vae is not None:
            self.vae.save_pretrained(os.path.join(directory, "vae"))
        self.scheduler.save_pretrained(os.path.join(directory, "scheduler"))
