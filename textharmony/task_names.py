"""The task vocabulary: what the model does, named once, and the one mapping between data and inference names.

Data, training and evaluation records use the *data* names (a shard record's ``task``, ``data.tasks`` filters,
``data.memory.tasks``, the prompt templates of :mod:`textharmony.data.tasks`, the metric families of the eval
suites); the pipeline, ``infer.py`` and batch files use the *inference* names (one per pipeline method). They
are the same word except where the user-facing name says what the user gets:

  data task   inference task   what it is
  detect      detect           text regions (polygons)
  spot        spot             words + their polygons
  recognize   ocr              the text of an image, or of a box in it (word crops: the reader)
  vqa         vqa              an answer to a question about the image
  caption     caption          a description of the image
  kie         kie              key-information fields of a document (where the pipeline offers it)
  t2i         generate         text-to-image (an image showing the given words)
  edit        edit             write a word into a masked region of an image
  (vqa turns) chat             multi-turn, multi-image conversation (trained as vqa conversations)

Evaluation suites name a sub-task by its metric family: ``recognize`` / ``detect`` / ``spot`` / ``vqa`` (data
names) read through ``pipeline.read(inference_task(name), ...)``; their writing sub-tasks are named after the
pipeline methods they call (``generate``, ``edit``). Import the names from here; do not spell the mapping again.
"""
from __future__ import annotations

DATA_TASKS = ("detect", "spot", "recognize", "vqa", "caption", "t2i", "edit", "kie")
OUTPUT_DATA_TASKS = ("t2i", "edit")                       # data tasks whose answer is an image (``<boi>``)
READ_TASKS = ("detect", "spot", "ocr", "vqa", "caption", "chat")     # inference tasks answered in text
WRITE_TASKS = ("generate", "edit")                        # inference tasks answered with an image
INFERENCE_TASKS = READ_TASKS + WRITE_TASKS
RENAMED = {"recognize": "ocr", "t2i": "generate"}         # data name -> inference name, where they differ
_BACK = {v: k for k, v in RENAMED.items()}


def inference_task(data_task: str) -> str:
    """The inference (pipeline / CLI) name of a data task: ``recognize`` -> ``ocr``, ``t2i`` -> ``generate``,
    any other -> itself."""
    if data_task not in DATA_TASKS:
        raise ValueError(f"unknown data task {data_task!r}; one of {list(DATA_TASKS)}")
    return RENAMED.get(data_task, data_task)


def data_task(inference_task: str) -> str | None:
    """The data (training record) name of an inference task, or None for ``chat`` (no record task of its own)."""
    if inference_task not in INFERENCE_TASKS and inference_task not in DATA_TASKS:
        raise ValueError(f"unknown inference task {inference_task!r}; one of {list(INFERENCE_TASKS)}")
    name = _BACK.get(inference_task, inference_task)
    return name if name in DATA_TASKS else None


__all__ = ["DATA_TASKS", "INFERENCE_TASKS", "OUTPUT_DATA_TASKS", "READ_TASKS", "RENAMED", "WRITE_TASKS", "data_task",
           "inference_task"]
