# The README's commands. Everything runs inside .venv, created on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
QUICK ?=

.PHONY: install install-test demo test bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[fast]' || { \
	  echo 'make: pywuffs (the fast PNG decoder) did not build; PNGs are decoded by OpenCV instead' >&2; \
	  $(BIN)/python -m pip install -q -e .; }
	touch $@

install-test: $(VENV)/.installed-test

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

demo: install
	$(BIN)/handwritten sample --dir demo/emnist
	$(BIN)/handwritten train --model model_2 --data demo/emnist --out demo/model_2.keras --overwrite
	$(BIN)/handwritten evaluate demo/model_2.keras --data demo/emnist --report demo/report
	$(BIN)/python scripts/demo_images.py --dir demo/images
	$(BIN)/handwritten predict demo/model_2.keras demo/images/char-*.png
	$(BIN)/handwritten predict demo/model_2.keras demo/images/line-number.png --line --charset digits
	$(BIN)/handwritten predict demo/model_2.keras demo/images/line-name.png --line --charset upper
	@echo "demo: model in demo/model_2.keras, report in demo/report/report.html;" \
	      "try it in a browser with: $(BIN)/handwritten serve demo/model_2.keras"

test: install-test
	-bash scripts/system-deps.sh
	$(BIN)/python -m pytest

bench: install-test
	$(BIN)/python benchmarks/run_all.py $(if $(QUICK),--quick,)

clean:
	rm -rf demo build dist src/*.egg-info .pytest_cache
