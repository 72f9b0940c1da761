# The two commands a newcomer types: `make run` and `make test`.
PY := .venv/bin/python
# The shipped configuration lives in the package (mediasrv/data/) so that a wheel carries it.
SHIPPED := mediasrv/data/conf.d
# The suite mostly waits on sockets and timers (about 10 % of a core serially), so it runs on
# more worker processes than the machine has cores; `make test TEST_WORKERS=0` runs it serially.
TEST_WORKERS ?= 6
# The unit tiers: no server, no SIPp or baresip, no engine over UDP (`make test-fast`).
FAST_TESTS := tests/test_compiled.py tests/sip tests/config tests/services tests/call tests/transport tests/media \
	tests/peers_selftest/test_audio.py tests/peers_selftest/test_sipmsg.py \
	--ignore-glob='tests/media/test_engine*'

.PHONY: setup run test test-fast bench lint check-config clean

setup:
	@bash scripts/setup.sh

run: setup
	$(PY) -m mediasrv run -c $(SHIPPED)

test: setup
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup

test-fast: setup
	$(PY) -m pytest -q -n 2 $(FAST_TESTS)

bench: setup
	$(PY) -m pytest bench -q --benchmark-disable-gc --benchmark-columns=min,median,max

lint: setup
	$(PY) -m ruff check mediasrv tests bench setup.py

check-config: setup
	$(PY) -m mediasrv check-config -c $(SHIPPED)

clean:
	rm -rf build .venv mediasrv/*.so mediasrv/*/*.so mediasrv/*/*.c mediasrv/*/*.html ext/*.c ext/*.html
