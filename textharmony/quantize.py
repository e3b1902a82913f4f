"""Quantized inference: torchao int8 / int4 for the ViT and LLM linears, bitsandbytes 8-bit / NF4 for a pretrained LLM.

    pipe = TextHarmonyPipeline.from_pretrained(model_dir, quantize="int8")      # or infer.py --quantize int8
    save_quantized(pipe.model, "model-int8")                                    # safetensors, int8 payload
    pipe = TextHarmonyPipeline.from_pretrained("model-int8")                     # loads the int8 weights as saved

Methods (``quantize=``):

=================  ===================================================================================================
``none``           the weights as stored (the default)
``int8``           torchao int8 weight-only (``Int8WeightOnlyConfig``: per-channel int8 weights, float activations),
                   every ``nn.Linear`` of the ViT (``model.vision.model``) and the LLM (``model.llm``, LM head included)
``int8-dynamic``   torchao int8 dynamic activations + int8 weights (``Int8DynamicActivationInt8WeightConfig``)
``int4``           int4 weight-only, group size 32. CPU: torchao's ``PrototypeInt4WeightOnlyConfig`` (the tinygemm CPU
                   kernel ``_weight_int4pack_mm_for_cpu``; needs out_features % 16 == 0 and in_features % 32 == 0, other
                   linears stay float; it is fast with bfloat16 activations, slow with float32). CUDA:
                   ``Int4WeightOnlyConfig`` (tile-packed, bfloat16 only)
``bnb-int8``       bitsandbytes LLM.int8() for the LLM, loaded through transformers' ``BitsAndBytesConfig`` (CUDA only;
                   the LLM must be a pretrained one, i.e. a saved model directory); the other parts run in ``dtype``
``bnb-nf4``        bitsandbytes 4-bit NF4 (double quantisation, compute in ``dtype``) for the LLM, likewise
=================  ===================================================================================================

The connector, mapper, conv stem, CTC head and the image decoder (UNet, VAE) are never quantized: they are small
next to the LLM and ViT at every preset, and the UNet's quality is more sensitive to weight error; on a GPU run them
in bfloat16/float16 (``dtype=``). Quantizing replaces weights in place, after the model is cast to its dtype and
device (quantize *after* ``.to()``: a quantized weight does not follow a later dtype cast).

Saved quantized models (:func:`save_quantized`) hold the ViT and LLM weights in ``quantized.safetensors`` (torchao's
safetensors layout: int8 data + scales as plain tensors, the tensor subclass structure in the header metadata) next
to the usual ``textharmony_config.yaml``, ``textharmony.safetensors``, ``unet/``, ``scheduler/`` and the ViT/LLM
``config.json`` + tokenizer; ``vision/`` and ``llm/`` hold no weights, so a plain loader fails on such a directory
instead of using random weights. ``int8`` and ``int8-dynamic`` can be saved; ``int4`` cannot (torchao 0.18's
safetensors support has no ``Int4OpaqueTensor``: save the float model and load it with ``quantize="int4"``), nor
can ``bnb-*`` (save the float model; bitsandbytes quantizes at load time).

Every failure is an :class:`~textharmony.io_utils.InputError` with one line naming the option and the fix.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import sys

import torch
from torch import nn

from .io_utils import InputError

logger = logging.getLogger("textharmony")

METHODS = ("none", "int8", "int8-dynamic", "int4", "bnb-int8", "bnb-nf4")
TORCHAO_METHODS = ("int8", "int8-dynamic", "int4")
BNB_METHODS = ("bnb-int8", "bnb-nf4")
SAVABLE = ("int8", "int8-dynamic")
QUANTIZED_NAME = "quantized.safetensors"
INT4_GROUP = 32
PARTS = ("vision", "llm")           # model.vision.model and model.llm


# --------------------------------------------------------------------------- import hygiene
def quiet_torchao_import() -> None:
    """Import torchao (and diffusers' torchao quantizer, which imports it whenever torchao is installed) with
    their import-time warnings muted: torchao 0.18 logs "Failed to load ..." for CUDA-only extensions and two
    torch pytree deprecation lines, diffusers one "Unable to import `torchao` Tensor objects". Without this, any
    model load prints those lines on stderr once torchao is installed. A no-op without torchao."""
    if importlib.util.find_spec("torchao") is None:
        return
    todo = [m for m in ("torchao", "diffusers.quantizers.torchao.torchao_quantizer") if m not in sys.modules]
    if not todo:
        return
    names = ("torchao", "torch.utils._pytree", "diffusers", "diffusers.quantizers.torchao.torchao_quantizer")
    saved = [(lg, lg.level) for lg in map(logging.getLogger, names)]
    for lg, _ in saved:
        lg.setLevel(logging.ERROR)
    try:
        for name in todo:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - a diffusers without this module: nothing to mute
                pass
    finally:
        for lg, level in saved:
            lg.setLevel(level)


# --------------------------------------------------------------------------- options
def check_method(method: str | None, device: torch.device | str = "cpu") -> str:
    """The normalised method name (``None``/"" -> ``none``), or an InputError when it is unknown or cannot run on
    ``device`` here (missing library, no kernel, bitsandbytes without CUDA)."""
    m = "none" if method in (None, "", False) else str(method).strip().lower()
    if m not in METHODS:
        raise InputError(f"quantize '{method}' is not supported; use one of {', '.join(METHODS)}")
    dev = torch.device(device)
    if m in TORCHAO_METHODS:
        if importlib.util.find_spec("torchao") is None:
            raise InputError(f"quantize {m} needs torchao; install it with "
                             f"pip install -c constraints.txt -e '.[serve]' (or pip install torchao)")
        if m == "int4" and dev.type == "cpu" and not hasattr(torch.ops.aten, "_weight_int4pack_mm_for_cpu"):
            raise InputError("quantize int4: this torch build has no int4 CPU kernel (_weight_int4pack_mm_for_cpu); "
                             "use int8 or int8-dynamic")
        if m == "int4" and dev.type not in ("cpu", "cuda"):
            raise InputError(f"quantize int4 runs on cpu or cuda, not {dev.type}; use int8")
    if m in BNB_METHODS:
        if dev.type != "cuda":
            raise InputError(f"quantize {m} needs a CUDA device (bitsandbytes' 8-bit/NF4 kernels); on CPU use "
                             f"int8, int8-dynamic or int4 (torchao)")
        if importlib.util.find_spec("bitsandbytes") is None:
            raise InputError(f"quantize {m} needs bitsandbytes; install it with pip install bitsandbytes")
    return m


def method_of(model) -> str:
    """The quantization a model carries (``none`` if it was never quantized)."""
    return (getattr(model, "quantization", None) or {}).get("method", "none")


# --------------------------------------------------------------------------- torchao
def _config(method: str, device: torch.device):
    from torchao import quantization as q
    if method == "int8":
        return q.Int8WeightOnlyConfig(set_inductor_config=False)       # no torch.compile here: leave inductor alone
    if method == "int8-dynamic":
        return q.Int8DynamicActivationInt8WeightConfig(set_inductor_config=False)
    if device.type == "cpu":
        from torchao.prototype.quantization.int4.inference_workflow import PrototypeInt4WeightOnlyConfig
        return PrototypeInt4WeightOnlyConfig(group_size=INT4_GROUP, set_inductor_config=False)
    return q.Int4WeightOnlyConfig(group_size=INT4_GROUP, int4_packing_format="tile_packed_to_4d",
                                  set_inductor_config=False)


def _eligible(method: str, device: torch.device):
    def fn(module: nn.Module, fqn: str) -> bool:
        if not isinstance(module, nn.Linear) or "lora_" in fqn or type(module.weight) is not nn.Parameter:
            return False
        if method == "int4":      # group-wise int4: whole groups along K; the CPU packer also wants N % 16 == 0
            n, k = module.weight.shape
            return k % INT4_GROUP == 0 and (n % 16 == 0 if device.type == "cpu" else n % 8 == 0)
        return True
    return fn


def tensor_nbytes(t: torch.Tensor) -> int:
    """Bytes of a tensor's storage; a torchao tensor subclass counts its inner tensors (int data + scales)."""
    if hasattr(t, "__tensor_flatten__") and type(t) not in (torch.Tensor, nn.Parameter):
        names, _ = t.__tensor_flatten__()
        return sum(tensor_nbytes(getattr(t, n)) for n in names if getattr(t, n, None) is not None)
    return t.numel() * t.element_size()


def param_bytes(module: nn.Module) -> int:
    """Bytes of a module's parameters and buffers, as stored (quantized weights at their packed size)."""
    seen: set[int] = set()
    total = 0
    for t in list(module.parameters()) + list(module.buffers()):
        if id(t) not in seen:
            seen.add(id(t))
            total += tensor_nbytes(t)
    return total


def quantize_model(model, method: str, device: torch.device | str | None = None) -> dict:
    """Quantize the ViT and LLM linears of ``model`` in place with torchao (``int8`` / ``int8-dynamic`` / ``int4``).
    Returns (and stores as ``model.quantization``) ``{"method", "layers", "skipped", "bytes_before", "bytes_after"}``
    (bytes of the ViT + LLM). A model already quantized is refused; ``none`` is a no-op."""
    dev = torch.device(device) if device is not None else model.device
    method = check_method(method, dev)
    if method == "none":
        return {"method": "none"}
    if method in BNB_METHODS:
        raise InputError(f"quantize {method} happens while loading the LLM; use "
                         f"TextHarmonyPipeline.from_pretrained(model_dir, quantize='{method}')")
    if method_of(model) != "none":
        raise InputError(f"the model is already quantized ({method_of(model)}); load the float model again to "
                         f"quantize it as {method}")
    if method == "int4" and dev.type == "cuda" and model.dtype != torch.bfloat16:
        raise InputError("quantize int4 on CUDA needs bfloat16; use dtype='bfloat16'")
    if method == "int4" and model.dtype == torch.float32:
        logger.warning("int4 with float32 activations runs the CPU kernel's slow path; use dtype bfloat16 "
                       "(--dtype bfloat16) for speed")
    quiet_torchao_import()
    from torchao.quantization import quantize_
    parts = [model.vision.model, model.llm]
    before = sum(param_bytes(p) for p in parts)
    eligible = _eligible(method, dev)
    linears = [(f, m) for p in parts for f, m in p.named_modules() if isinstance(m, nn.Linear) and "lora_" not in f]
    chosen = {id(m) for f, m in linears if eligible(m, f)}
    cfg = _config(method, dev)
    with torch.no_grad():
        for p in parts:
            quantize_(p, cfg, filter_fn=lambda m, f: id(m) in chosen)
    cache = getattr(model, "feature_cache", None)
    if cache is not None:           # cached visual tokens came from the float ViT
        cache.clear()
    info = {"method": method, "layers": len(chosen), "skipped": len(linears) - len(chosen),
            "bytes_before": before, "bytes_after": sum(param_bytes(p) for p in parts)}
    model.quantization = info
    logger.info("quantized %d ViT/LLM linears to %s (%d left in %s): %.2f -> %.2f MB", info["layers"], method,
                info["skipped"], str(model.dtype).replace("torch.", ""), before / 1e6, info["bytes_after"] / 1e6)
    return info


# --------------------------------------------------------------------------- bitsandbytes (CUDA)
def bnb_config(method: str, dtype: torch.dtype):
    """transformers' ``BitsAndBytesConfig`` for ``bnb-int8`` / ``bnb-nf4``."""
    from transformers import BitsAndBytesConfig
    if method == "bnb-int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=dtype)


@contextlib.contextmanager
def llm_loading(method: str, device: torch.device, dtype: torch.dtype):
    """While active, the LLM part of a model being built (``textharmony.model.llm.build_llm``) is loaded with
    ``quantization_config=bnb_config(method)`` and ``device_map`` on ``device``; a no-op for other methods."""
    if method not in BNB_METHODS:
        yield
        return
    from .model import llm as llm_module
    real = llm_module.AutoModelForCausalLM
    qc = bnb_config(method, dtype)
    where = {"": device.index if device.index is not None else torch.cuda.current_device()}

    class _QuantizedAuto:
        @staticmethod
        def from_pretrained(*args, **kw):
            kw.update(quantization_config=qc, device_map=where, dtype=dtype)
            return real.from_pretrained(*args, **kw)

        @staticmethod
        def from_config(*args, **kw):
            raise InputError(f"quantize {method} needs a pretrained LLM (a saved model directory or a hub id), "
                             f"not a random one from a .yaml config")

    llm_module.AutoModelForCausalLM = _QuantizedAuto
    try:
        yield
    finally:
        llm_module.AutoModelForCausalLM = real


# --------------------------------------------------------------------------- pipeline glue
def load_model(path: str, method: str, dtype: torch.dtype, device: torch.device):
    """``TextHarmonyModel`` from a model directory: a :func:`save_quantized` directory as saved, a bitsandbytes LLM
    loaded quantized, otherwise the plain loader (torchao methods quantize in :func:`place`)."""
    from .model.textharmony import TextHarmonyModel
    if is_quantized_dir(path):
        saved = read_quantized_method(path)
        if method not in ("none", saved):
            raise InputError(f"'{path}' holds {saved}-quantized weights; load it with quantize none or {saved}, or "
                             f"quantize the float model as {method}")
        return load_quantized(path, dtype)
    if method in BNB_METHODS:     # built without a cast (a bitsandbytes model refuses .to(dtype)); place() casts the rest
        with llm_loading(method, device, dtype):
            return TextHarmonyModel.from_pretrained(path, dtype=None)
    return TextHarmonyModel.from_pretrained(path, dtype=dtype)


def place(model, device: torch.device, dtype: torch.dtype, method: str) -> None:
    """``model.to(device, dtype)`` then quantize with ``method``: a bitsandbytes LLM stays where its loader put it;
    a loaded quantized model is only moved to ``device`` (its weights keep the dtype they were saved in)."""
    if method in BNB_METHODS:
        if getattr(model.llm, "hf_quantizer", None) is None:
            raise InputError(f"quantize {method} needs a pretrained LLM (a saved model directory or a hub id), "
                             f"not a random one from a .yaml config")
        llm = model.llm
        del model._modules["llm"]
        try:
            model.to(device=device, dtype=dtype)
        finally:
            model.llm = llm
        model.quantization = {"method": method, "layers": sum(
            1 for m in llm.modules() if type(m).__name__ in ("Linear8bitLt", "Linear4bit"))}
        return
    if method_of(model) != "none":
        if dtype != model.dtype:
            raise InputError(f"this model was saved quantized in {str(model.dtype).replace('torch.', '')}; load it "
                             f"with that dtype (or quantize the float model in {str(dtype).replace('torch.', '')})")
        model.to(device=device)
        return
    model.to(device=device, dtype=dtype)
    if method in TORCHAO_METHODS:
        quantize_model(model, method, device)


# --------------------------------------------------------------------------- save / load
def is_quantized_dir(path) -> bool:
    return os.path.isfile(os.path.join(str(path), QUANTIZED_NAME))


def read_quantized_method(path) -> str:
    from safetensors import safe_open
    file = os.path.join(str(path), QUANTIZED_NAME)
    try:
        with safe_open(file, framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as e:  # noqa: BLE001 - SafetensorError is not an OSError
        raise InputError(f"'{file}' is damaged ({' '.join(str(e).split())[:150]}); save it again with "
                         f"save_quantized") from None
    method = meta.get("textharmony_quantize")
    if method not in SAVABLE:
        raise InputError(f"'{file}' is not a textharmony quantized checkpoint (no textharmony_quantize metadata); "
                         f"save it again with save_quantized")
    return method


def _part_state(model) -> dict[str, torch.Tensor]:
    """ViT + LLM state, prefixed as in the TextHarmonyModel; tensors shared by two keys (tied embeddings) copied."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for prefix, part in (("vision.model.", model.vision.model), ("llm.", model.llm)):
        for k, v in part.state_dict().items():
            if type(v) is torch.Tensor:
                v = v.detach().cpu().contiguous()
                if v.data_ptr() in seen:
                    v = v.clone()
                seen.add(v.data_ptr())
            out[prefix + k] = v
    return out


def save_quantized(model, directory: str) -> None:
    """Write a torchao-quantized (``int8`` / ``int8-dynamic``) model to ``directory`` (see the module docstring for
    the layout); ``TextHarmonyPipeline.from_pretrained(directory)`` loads it back quantized. Written to a temporary
    sibling and renamed into place; an existing directory is replaced only if it is a TextHarmony model."""
    from safetensors.torch import save_file

    from .model.io import CONFIG_NAME, WEIGHTS_NAME, _own_state, staged_dir, write_config
    method = method_of(model)
    if method not in SAVABLE:
        why = ("the model is not quantized: use model.save_pretrained" if method == "none" else
               "torchao 0.18's safetensors support has no int4 tensors: save the float model and load it with "
               "quantize='int4'" if method == "int4" else
               "bitsandbytes quantizes at load time: save the float model and load it with quantize='" + method + "'")
        raise InputError(f"cannot save a {method} model as quantized safetensors: {why}")
    if model.slide is not None:
        raise InputError("cannot save a quantized Slide-LoRA model; save the float model (save_pretrained) and "
                         "quantize it at load time")
    quiet_torchao_import()
    from torchao.prototype.safetensors.safetensors_support import flatten_tensor_state_dict
    directory = os.path.abspath(directory)
    if os.path.lexists(directory) and (not os.path.isdir(directory) or (
            os.listdir(directory) and not os.path.isfile(os.path.join(directory, CONFIG_NAME)))):
        raise InputError(f"save_quantized: '{directory}' exists and is not a TextHarmony model directory; choose "
                         f"another directory or remove it first")
    with staged_dir(directory) as tmp:
        model.vision.model.config.save_pretrained(os.path.join(tmp, "vision"))
        model.llm.config.save_pretrained(os.path.join(tmp, "llm"))
        if getattr(model.llm, "generation_config", None) is not None:
            model.llm.generation_config.save_pretrained(os.path.join(tmp, "llm"))
        model.tokenizer.save_pretrained(os.path.join(tmp, "llm"))
        model.decoder.save_pretrained(tmp)
        save_file(_own_state(model), os.path.join(tmp, WEIGHTS_NAME))
        tensors, meta = flatten_tensor_state_dict(_part_state(model))
        meta = {**meta, "textharmony_quantize": method, "textharmony_dtype": str(model.dtype).replace("torch.", ""),
                "textharmony_info": json.dumps(model.quantization)}
        save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(tmp, QUANTIZED_NAME), metadata=meta)
        write_config(model, tmp)


def load_quantized(directory: str, dtype: torch.dtype | None = None):
    """A :func:`save_quantized` directory -> ``TextHarmonyModel`` with its quantized ViT/LLM weights (on CPU, in
    the dtype it was saved in; ``dtype`` must match it when given)."""
    from safetensors import safe_open

    from .model.io import WEIGHTS_NAME, _quiet_loading, read_config
    from .model.textharmony import TextHarmonyModel
    method = read_quantized_method(directory)
    quiet_torchao_import()
    from torchao.prototype.safetensors.safetensors_support import unflatten_tensor_state_dict
    file = os.path.join(directory, QUANTIZED_NAME)
    with safe_open(file, framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    saved_dt = getattr(torch, meta.get("textharmony_dtype", "float32"))
    if dtype is not None and dtype != saved_dt:
        raise InputError(f"'{directory}' was saved quantized in {meta.get('textharmony_dtype')}; load it with that "
                         f"dtype (or quantize the float model in {str(dtype).replace('torch.', '')})")
    cfg = read_config(directory)
    if cfg.slide_lora.enabled:
        raise InputError(f"'{directory}': quantized Slide-LoRA checkpoints are not supported")
    # the ViT and LLM are built from their config.json (random init, then replaced by the saved weights)
    with open(os.path.join(cfg.vision.pretrained, "config.json"), encoding="utf-8") as fh:
        cfg.vision.arch = json.load(fh)
    with open(os.path.join(cfg.llm.pretrained, "config.json"), encoding="utf-8") as fh:
        cfg.llm.arch = json.load(fh)
    cfg.llm.tokenizer = cfg.llm.pretrained
    cfg.vision.pretrained = cfg.llm.pretrained = None
    with _quiet_loading(), torch.random.fork_rng(devices=[]):
        model = TextHarmonyModel.from_config(cfg, dtype=saved_dt)
    from safetensors.torch import load_file
    model.load_state_dict(load_file(os.path.join(directory, WEIGHTS_NAME)), strict=False)
    state, leftover = unflatten_tensor_state_dict(tensors, meta)
    if leftover:
        raise InputError(f"'{file}' has tensors that fit no weight ({sorted(leftover)[:3]}); save it again")
    expected = {"vision.model." + k for k in model.vision.model.state_dict()} | {"llm." + k for k in model.llm.state_dict()}
    if set(state) != expected:
        raise InputError(f"'{file}' does not match the model config: missing {sorted(expected - set(state))[:3]}, "
                         f"unexpected {sorted(set(state) - expected)[:3]}; save it again")
    model.load_state_dict(state, strict=False, assign=True)   # a tied LM head stays untied: it is saved quantized
    # restore the references a normal save uses, so save_pretrained-style code sees the usual config
    cfg.vision.arch, cfg.llm.arch = {}, {}
    model.quantization = {**json.loads(meta.get("textharmony_info", "{}")), "method": method}
    return model.eval()
