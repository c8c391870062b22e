PYTHON ?= python3

.PHONY: help deps install run demo test bench pyz deb clean catalogs

help:
	@echo "make demo    telepayd end to end on this machine: PostgreSQL, emulators, the daemon, a scripted walk"
	@echo "make run     start a throwaway PostgreSQL and telepayd on 127.0.0.1:8080 (Ctrl-C stops)"
	@echo "make test    run the test suite (starts its own PostgreSQL)"
	@echo "make bench   run the benchmarks in bench/ (prints ratios; exits 1 when a target is missed)"
	@echo "make pyz     build dist/telepayd-<version>.pyz"
	@echo "make deb     build dist/telepayd_<version>_<arch>.deb (installs debhelper when missing, as root)"
	@echo "make install install telepayd and the test tools with pip"
	@echo "make catalogs  update the message catalogs (telepayd/locale) from telepayd/texts.py and compile them"

deps:
	@PYTHON=$(PYTHON) tools/ensure_deps.sh

install:
	$(PYTHON) -m pip install -q -e '.[test]'

demo: deps
	$(PYTHON) -m tools.demo

run: deps
	$(PYTHON) -m tools.run_local

test: deps
	$(PYTHON) -m pytest

bench: deps
	@$(PYTHON) -c 'import flask' 2>/dev/null || $(PYTHON) -m pip install -q -e '.[test,bench]'
	$(PYTHON) -m bench

pyz: deps
	$(PYTHON) zipapp.py

deb: deps
	PYTHON=$(PYTHON) tools/build_deb.sh

clean:
	rm -rf build dist *.egg-info .pytest_cache .hypothesis

# The message catalogs (docs/DESIGN.md, "Languages"): the template from telepayd/texts.py, each language's
# .po brought up to date (new messages empty, stale ones dropped), then compiled to the .mo files that ship.
LANGUAGES = ru es
catalogs:
	pybabel extract --no-location --sort-output --omit-header --no-default-keywords -k _ -k ngettext:1,2 \
		-o telepayd/locale/telepayd.pot telepayd/texts.py
	for lang in $(LANGUAGES); do \
		if [ -f telepayd/locale/$$lang/LC_MESSAGES/telepayd.po ]; then \
			pybabel update --no-fuzzy-matching --ignore-obsolete -D telepayd -l $$lang \
				-i telepayd/locale/telepayd.pot -d telepayd/locale; \
		else pybabel init -D telepayd -l $$lang -i telepayd/locale/telepayd.pot -d telepayd/locale; fi; \
	done
	pybabel compile -D telepayd -d telepayd/locale --statistics
