# The two commands a newcomer types: `make run` and `make test`.
PY := .venv/bin/python
# The shipped configuration lives in the package (mediasrv/data/) so that a wheel carries it.
SHIPPED := mediasrv/data/conf.d

.PHONY: setup run test bench lint check-config clean

setup:
	@bash scripts/setup.sh

run: setup
	$(PY) -m mediasrv run -c $(SHIPPED)

test: setup
	$(PY) -m pytest

bench: setup
	$(PY) -m pytest bench -q --benchmark-disable-gc --benchmark-columns=min,median,max

lint: setup
	$(PY) -m ruff check mediasrv tests bench setup.py

check-config: setup
	$(PY) -m mediasrv check-config -c $(SHIPPED)

clean:
	rm -rf build .venv mediasrv/*.so ext/*.c ext/*.html
