# The two commands of the README. Each sets up .venv first (quick when it is already there).
.PHONY: compare test venv

venv:
	@scripts/setup-venv.sh

compare: venv
	@scripts/setup-datasets.sh
	.venv/bin/kernelprof compare --neuron lif --T 8

test: venv
	@scripts/setup-datasets.sh
	@scripts/setup-browser.sh
	.venv/bin/python -m pytest -q
