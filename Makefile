# The project's entry points. `make train` and `make test` set everything up on a fresh machine.
PYTHON := .venv/bin/python
SETUP_STAMP := .venv/.mqformer-setup-stamp
SETUP_INPUTS := scripts/setup_env.sh scripts/repack_detectron2.sh requirements/constraints.txt \
                requirements/runtime.txt setup.py pyproject.toml

.PHONY: setup train test cuda benchmark

setup: $(SETUP_STAMP)

# Re-run the (idempotent) set-up whenever one of its inputs changes.
$(SETUP_STAMP): $(SETUP_INPUTS)
	bash scripts/setup_env.sh
	touch $@

# Main job. Until the model lands (issue 6), a smoke run that trains one MSDeformAttn layer.
train: setup
	$(PYTHON) tools/smoke_train.py

test: setup
	$(PYTHON) -m pytest -q

# Compile the CUDA kernels into mqformer_d2/_C (no GPU needed: FORCE_CUDA=1; arch 9.0 by default).
cuda: setup
	FORCE_CUDA=1 $(PYTHON) -m pip install -q --no-build-isolation --no-deps -e .

benchmark: setup
	$(PYTHON) benchmarks/ms_deform_attn.py
