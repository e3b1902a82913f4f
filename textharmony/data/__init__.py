"""Data pipeline: source layouts -> one normalised webdataset schema -> batches (see docs/data.md).

Images are decoded by :mod:`textharmony.images` (the one policy); nothing here imports the model (docs/design.md).

Modules (each single-purpose; import what you need, nothing heavy is imported here):
  schema      the record schema, ``make_sample``, ``validate_record`` / ``load_record``
  boxes       0..999 box / polygon text (``<bbox>``, ``<poly>``), ``parse_output`` for model output
  tasks       all prompt templates (en/zh) and answer formats: ``make_turns(task, record, rng, lang)``
  masks       edit masks, masked images, the text-to-image condition
  synth       ``python -m textharmony.data.synth``: bilingual synthetic images in the MARIO layout
  convert     ``python -m textharmony.data.convert {mario,docstruct,textharmony-json,anytext}``
  config      ``DataConfig`` / ``DatasetSpec``
  transforms  ``ImageProcessor``: PIL -> ViT / decoder tensors (one per model, ``model.processor``)
  collate     ``Collator``: records + images -> the model's batch dict (training and generation)
  shards      shard lists, the seeded shuffle buffer, the tar reader (raw samples)
  loader      ``build_loader``: shards -> weighted mixture -> batches, bad-sample stats, exact resume
  stats       ``DataStats`` (counts by reason)
"""
