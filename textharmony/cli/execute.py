"""The CLI's model side: prepared requests (:func:`textharmony.cli.infer.prepare`) -> pipeline calls -> results.

Reading requests with equal options form a group that goes to :meth:`TextHarmonyPipeline.read` in one call: the
pipeline splits it into chunks of its ``batch_size`` (the only place requests are chunked) and reports each chunk
as it is done (the progress bar; a chunk that fails is rerun one record at a time). Every request carries the
values :meth:`~textharmony.pipeline.TextHarmonyPipeline.check_inputs` returned in ``prepare`` (``_checked``), so
the pipeline does not validate it a second time.
"""
from __future__ import annotations

import os
from typing import Any

from ..io_utils import InputError
from ..task_names import READ_TASKS

TEXT_TASKS = READ_TASKS


def one_line(msg: Any) -> str:
    return " ".join(str(msg).split())


def _text_key(p: dict) -> tuple:
    return (p["task"], p.get("lang"), p.get("max_new_tokens"), p.get("temperature") or 0.0,
            p.get("top_p", 1.0), p.get("seed"))


def _save(img, path: str) -> None:
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        img.save(path)
    except (OSError, ValueError) as e:
        raise InputError(f"cannot write '{path}': {one_line(e)}; choose another --out") from None


def _text_result(p: dict, r: dict) -> dict:
    task = p["task"]
    res: dict[str, Any] = {"task": task}
    if task != "chat":
        res["image"] = p["image"]
        res["size"] = list(p["_image"].size)
    if task == "ocr" and p.get("_box"):
        res["box"] = [int(v) if float(v).is_integer() else round(v, 2) for v in p["_box"]]
    if task == "vqa":
        res["question"] = p["question"]
    res["text"] = r["text"]
    if task == "detect":
        res["polygons"] = r["polygons"]
    if task == "spot":
        res["words"] = r["words"]
    if task in ("detect", "spot") and p.get("_out"):
        from .draw import draw_regions
        _save(draw_regions(p["_image"], r["polygons"] if task == "detect" else r["words"]), p["_out"][0])
        res["out"] = p["_out"][0]
    return res


def _run_text(pipe, ps: list[dict], on_batch=None) -> list[dict]:
    """Prepared reading requests with equal options -> the pipeline's raw results, in one ``read`` call (checked
    already: their ``_checked`` values go along; ``on_batch(start, results)`` as each chunk is done)."""
    p0 = ps[0]
    task = p0["task"]
    kw = {"lang": p0.get("lang"), "max_new_tokens": p0.get("max_new_tokens"),
          "temperature": p0.get("temperature") or 0.0, "top_p": p0.get("top_p", 1.0), "seed": p0.get("seed"),
          "_checked": {"max_new_tokens": p0["_checked"]["max_new_tokens"]}, "_on_batch": on_batch}
    if task == "vqa":
        kw["_checked"]["questions"] = [p["_checked"]["questions"][0] for p in ps]
    if task == "chat":
        return pipe.read("chat", [p["_images"] for p in ps], turns=[p["_turns"] for p in ps], **kw)
    return pipe.read(task, [p["_image"] for p in ps], questions=[p.get("question") for p in ps] if task == "vqa"
                     else None, boxes=[p.get("_box") for p in ps] if task == "ocr" else None, **kw)


def _run_image(pipe, p: dict, progress=None) -> dict:
    kw = {"steps": p.get("steps"), "guidance": p.get("guidance"), "seed": p.get("seed", 0), "lang": p.get("lang"),
          "sampler": p.get("sampler"), "progress": progress}
    if p["task"] == "generate":
        imgs = pipe.generate(p.get("text", ""), caption=p.get("caption") or None, size=p.get("size"),
                             num_images=p.get("num_images", 1), _checked=p["_checked"], **kw)
    else:
        imgs = [pipe.edit(p["_image"], p["text"], box=p.get("_box"), mask=p.get("_mask"), _checked=p["_checked"],
                          **kw)]
    for img, path in zip(imgs, p["_out"]):
        _save(img, path)
    dc = pipe.model.cfg.decoder
    res = {"task": p["task"]}
    if p["task"] == "edit":
        res["image"] = p["image"]
    res.update(images=p["_out"], size=list(imgs[0].size), seed=kw["seed"],
               steps=kw["steps"] or dc.default_steps,
               guidance=dc.default_guidance if kw["guidance"] is None else kw["guidance"])
    return res


def execute(pipe, prepared: list[dict], on_error: str = "raise", progress_bar=None, diffusion_progress=None) -> list:
    """Run prepared requests in their order; reading tasks with equal options are batched (one ``read`` call
    per group; the pipeline chunks it).

    ``on_error="record"``: a failing request yields ``{"error": msg}`` and the rest go on (a chunk that fails is
    rerun one record at a time, then the group goes on from the next chunk)."""
    results: list[Any] = [None] * len(prepared)

    def fail(i, e):
        if on_error == "raise":
            raise e
        results[i] = {"task": prepared[i].get("task"), "error": one_line(e)}

    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(prepared):
        if p["task"] in TEXT_TASKS:
            groups.setdefault(_text_key(p), []).append(i)
    k, k0, rest = 0, 0, []                          # in a group: idx[:k] are done; rest = idx[k0:] is running

    def take(start, rs):                            # the pipeline has done a chunk: its results, the progress bar
        nonlocal k
        for i, r in zip(rest[start:], rs):
            results[i] = _text_result(prepared[i], r)
        k = k0 + start + len(rs)
        if progress_bar is not None:
            progress_bar.update(len(rs))

    for idx in groups.values():
        k = 0
        while k < len(idx):
            rest, k0 = idx[k:], k
            try:
                rs = _run_text(pipe, [prepared[i] for i in rest], take)
                if k < len(idx):                    # a stand-in pipeline that does not report its chunks
                    take(k - k0, rs[k - k0:])
            except Exception as e:  # noqa: BLE001 - reported per record (or re-raised)
                chunk = idx[k:k + pipe.batch_size]  # the chunk that failed
                if on_error == "raise" or len(chunk) == 1:
                    fail(chunk[0], e)
                else:                               # isolate the bad record(s): one at a time
                    for i in chunk:
                        try:
                            results[i] = _text_result(prepared[i], _run_text(pipe, [prepared[i]])[0])
                        except Exception as e1:  # noqa: BLE001
                            fail(i, e1)
                k += len(chunk)
                if progress_bar is not None:
                    progress_bar.update(len(chunk))
    for i, p in enumerate(prepared):
        if p["task"] in TEXT_TASKS:
            continue
        try:
            results[i] = _run_image(pipe, p, diffusion_progress)
        except Exception as e:  # noqa: BLE001 - reported per record (or re-raised)
            fail(i, e)
        if progress_bar is not None:
            progress_bar.update(1)
    return results
