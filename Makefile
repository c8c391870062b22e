PYTHON ?= python3

.PHONY: help install run test bench clean

help:
	@echo "make run     start a throwaway PostgreSQL and telepayd on 127.0.0.1:8080 (Ctrl-C stops)"
	@echo "make test    run the test suite (starts its own PostgreSQL)"
	@echo "make bench   run the benchmarks in bench/ (prints ratios)"
	@echo "make install install telepayd and the test tools with pip"

install:
	$(PYTHON) -m pip install -q -e '.[test]'

run:
	$(PYTHON) -m tools.run_local

test:
	$(PYTHON) -m pytest

bench:
	$(PYTHON) -m bench

clean:
	rm -rf build dist *.egg-info .pytest_cache .hypothesis
