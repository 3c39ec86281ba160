"""What blowtorch costs, measured against a raw PyTorch loop and the frameworks users would pick instead.

``python -m benchmarks`` (see ``--help``) runs three parts and writes ``results.json`` (every raw
number) and ``results.md`` (the tables):

- training (:mod:`benchmarks.training`): the tiny and medium workloads (:mod:`benchmarks.workloads`)
  with every contestant (:mod:`benchmarks.contestants`), each run a fresh process started the
  way a user starts a script (:mod:`benchmarks.harness`); the process reports from inside
  through :mod:`benchmarks.probe`;
- checkpoint writes (:mod:`benchmarks.checkpoints`);
- imports (:mod:`benchmarks.imports`).

Summaries and tables: :mod:`benchmarks.report`. Nothing here changes what blowtorch does: the
contestant scripts use blowtorch's public API, and the checkpoint benchmark calls the store the
training loop uses.
"""
