# The two commands of the README. Each sets up .venv first (quick when it is already there).
.PHONY: compare test test-slow venv

venv:
	@scripts/setup-venv.sh

compare: venv
	@scripts/setup-datasets.sh
	.venv/bin/kernelprof compare --neuron lif --T 8

test: venv
	@scripts/setup-datasets.sh
	@scripts/setup-browser.sh
	.venv/bin/python -m pytest -q

# The slow cases of the tests' grids, which `make test` leaves out.
test-slow: venv
	@scripts/setup-datasets.sh
	.venv/bin/python -m pytest -q -m slow
