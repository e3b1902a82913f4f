"""Run ``train.py`` as one rank of an FSDP job on the CPU (gloo): ``torchrun ... tests/fsdp_cpu_launch.py
ACCELERATE_CONFIG train.py --config ...``.

What ``accelerate launch`` would put into the environment for ACCELERATE_CONFIG's ``fsdp_config`` is set here
(``ACCELERATE_USE_FSDP`` and ``FSDP_*``, the names of ``accelerate.utils.launch.prepare_multi_gpu_env``), plus
``ACCELERATE_USE_CPU``. accelerate's ``AcceleratorState`` then still reports ``MULTI_CPU`` (it only turns an FSDP
plugin into ``DistributedType.FSDP`` for accelerator devices), and its CPU device is ``cpu:0``, which torch's FSDP
refuses as ``device_id`` ("Inconsistent compute device and `device_id` on rank 0: cpu vs cpu:0");
:func:`allow_cpu_fsdp` lifts exactly these two gates.
Everything after it (FSDP wrapping with the auto-wrap policy, ``clip_grad_norm_``, ``save_state``,
``get_state_dict``) is accelerate's and torch's own FSDP code, unchanged.
"""
from __future__ import annotations

import os
import runpy
import sys

import yaml

_ENV_NAMES = {"fsdp_transformer_layer_cls_to_wrap": "FSDP_TRANSFORMER_CLS_TO_WRAP"}


def fsdp_env(config_file: str) -> dict:
    """The environment ``accelerate launch --config_file config_file`` gives its processes for FSDP."""
    with open(config_file, encoding="utf-8") as f:
        cfg = yaml.safe_load(f)
    if cfg.get("distributed_type") != "FSDP":
        raise SystemExit(f"{config_file}: distributed_type is {cfg.get('distributed_type')!r}, not FSDP")
    env = {"ACCELERATE_USE_FSDP": "true", "ACCELERATE_USE_CPU": "true",
           "ACCELERATE_MIXED_PRECISION": str(cfg.get("mixed_precision", "no"))}
    for key, value in (cfg.get("fsdp_config") or {}).items():
        name = _ENV_NAMES.get(key, "FSDP_" + key[len("fsdp_"):].upper())
        env[name] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


def allow_cpu_fsdp() -> None:
    """Let ``AcceleratorState`` keep an FSDP plugin on ``MULTI_CPU`` (gloo) instead of dropping it for DDP."""
    import torch
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DistributedType

    original = AcceleratorState.__init__
    if getattr(original, "_cpu_fsdp", False):
        return

    def __init__(self, *args, fsdp_plugin=None, **kwargs):
        original(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
        if fsdp_plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
            self.fsdp_plugin = fsdp_plugin
            # both shared states: every later AcceleratorState() re-reads PartialState's
            for shared in (self.__dict__, PartialState._shared_state):
                shared["distributed_type"] = DistributedType.FSDP
                shared["device"] = torch.device("cpu")   # not "cpu:0": FSDP compares it with the params' device

    __init__._cpu_fsdp = True
    AcceleratorState.__init__ = __init__


def main() -> None:
    config_file, script, *argv = sys.argv[1:]
    os.environ.update(fsdp_env(config_file))
    allow_cpu_fsdp()
    sys.argv = [script, *argv]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))     # as `python script` would
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
