# The two commands of the README:  make demo  |  make test
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
PY := .venv/bin/python

.PHONY: setup demo test test-fast lint
setup:
	bash scripts/setup.sh

demo: setup
	$(PY) -m textharmony.demo --out outputs/demo

test: setup
	$(PY) -m pytest -q

test-fast: setup    # local work: the suite without the tests marked slow (> ~15 s each); CI runs `make test`
	$(PY) -m pytest -q -m "not slow"

lint: setup
	$(PY) -m ruff check textharmony tests train.py infer.py benchmarks
