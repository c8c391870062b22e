PYTHON ?= python3

.PHONY: help deps install run test bench clean

help:
	@echo "make run     start a throwaway PostgreSQL and telepayd on 127.0.0.1:8080 (Ctrl-C stops)"
	@echo "make test    run the test suite (starts its own PostgreSQL)"
	@echo "make bench   run the benchmarks in bench/ (prints ratios)"
	@echo "make install install telepayd and the test tools with pip"

deps:
	@PYTHON=$(PYTHON) tools/ensure_deps.sh

install:
	$(PYTHON) -m pip install -q -e '.[test]'

run: deps
	$(PYTHON) -m tools.run_local

test: deps
	$(PYTHON) -m pytest

bench: deps
	$(PYTHON) -m bench

clean:
	rm -rf build dist *.egg-info .pytest_cache .hypothesis
