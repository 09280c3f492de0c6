"""The serving path the app and `crossgen.load()` run: `pipeline` (the `Pipeline`), `batching` (the
micro-batcher), `interpolation`, `prompt_hints`, `edit` (editing an emoji with words), `seeds` (the seed rule)
and `app_process` (the app in a subprocess, for the benchmark and the tests).

May import: the base modules, `crossgen/models/`, `crossgen/postprocess/` and the record format
(`crossgen/data/records.py`); never training, the evaluation or a dataset builder.
"""
