"""The experiment harness on the built-in synthetic benchmark: the main job (`make train`) and what
the experiments built on it share, apart from the model, its training engine and its evaluators.

* results.py: metric lookup in detectron2's nested results, the benchmark's summary table and its
  training curves;
* runs.py: the newest main-job run (`newest_run`), which later experiments start from;
* export_parity.py: the exported main-job model against PyTorch, through the evaluators;
* seeds.py: experiments repeated over seeds (the `--seeds` option, tables of means, spread);
* time_budget.py: a training schedule sized to a wall-time budget from a measured step time.
"""
