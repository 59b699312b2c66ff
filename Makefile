# The project's entry points. `make train` and `make test` set everything up on a fresh machine.
PYTHON := .venv/bin/python
SETUP_STAMP := .venv/.mqformer-setup-stamp
SETUP_INPUTS := scripts/setup_env.sh scripts/repack_detectron2.sh requirements/constraints.txt \
                requirements/runtime.txt setup.py pyproject.toml

.PHONY: setup train demo test cuda benchmark ablation synthetic-data exemplars matting export

setup: $(SETUP_STAMP)

# Re-run the (idempotent) set-up whenever one of its inputs changes.
$(SETUP_STAMP): $(SETUP_INPUTS)
	bash scripts/setup_env.sh
	touch $@

# Main job: train the tiny MQ-Former from scratch on the built-in synthetic benchmark (generated
# on first use), evaluate every task, print one table. Each run writes to a new output/shapes/run_<time>/.
train: setup
	$(PYTHON) tools/train_shapes.py

# Draw the newest main-job run's predictions (every task) on validation images and on one natural
# photo (matplotlib's sample image) into a new output/demo/<time>/. Run `make train` first.
demo: setup
	$(PYTHON) tools/demo_shapes.py

# The paper's query ablation (learnable-only / conditional-only / mixed) on the same benchmark,
# two seeds per variant (six main-job runs, ~1.5 h on 2 cores): the table gives mean and each seed.
ablation: setup
	$(PYTHON) tools/query_ablation.py --seeds 42,43

# The synthetic data engine's check: hide the masks of half the training images, synthesize
# them from their boxes, and compare training without / with synthetic / with real masks and captions;
# two seeds (eight main-job runs, ~2 h on 2 cores): the table gives mean and each seed.
synthetic-data: setup
	$(PYTHON) tools/synthetic_data_experiment.py --seeds 42,43

# Export the newest main-job model to ONNX and evaluate the export beside PyTorch with the
# evaluators (instance AP, semantic mIoU, PQ); run `make train` first. Writes output/export/run_<time>/.
export: setup
	$(PYTHON) tools/deploy/export_parity.py $(if $(RUN),--run-dir $(RUN))

# Exemplar prompts: from the newest finished main-job run (output/shapes/run_*; `make train` first,
# or RUN=path), train the exemplar encoder per pooling (mean, max, attention, gated attention) and
# seed (42, 43) and print exemplar- beside text-prompted mask AP (~30 min on 2 cores).
exemplars: setup
	$(PYTHON) tools/exemplar_experiment.py $(if $(RUN),--run-dir $(RUN))

# Controllable matting: generate the benchmark's matting split, train the matting refinement (two
# seeds, at most 9 minutes each on 2 cores), score it beside closed-form / KNN matting and through
# the prompt -> mask -> trimap -> alpha pipeline of the newest main-job run, print the peer table.
# Needs a finished `make train` (or pass RUN=output/shapes/run_<time>); stops at once without one.
matting: setup
	$(PYTHON) tools/matting_experiment.py --seeds 0,1 $(if $(RUN),--run-dir $(RUN))

test: setup
	$(PYTHON) -m pytest -q

# Compile the CUDA kernels into mqformer_d2/_C (no GPU needed: FORCE_CUDA=1; arch 9.0 by default).
cuda: setup
	FORCE_CUDA=1 $(PYTHON) -m pip install -q --no-build-isolation --no-deps -e .

benchmark: setup
	$(PYTHON) benchmarks/ms_deform_attn.py
