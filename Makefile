# Two entry points: `make run` starts the bot, `make test` runs the checks. Both install what they need.
VENV ?= .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := fluidsynth fluid-soundfont-gm opus-tools librsvg2-bin
# Servers the scale-mode tests start themselves on loopback ports (the embedded bot needs none).
TEST_APT_PACKAGES := redis-server postgresql
STAMP := $(VENV)/.installed
STYLES := classical renaissance folk chinese celtic

.PHONY: run test deps system-deps lint bench train-all train-harmony evaluate

run: deps
	$(PY) -m bot

test: deps
	@$(MAKE) --no-print-directory system-deps APT_PACKAGES="$(TEST_APT_PACKAGES)"
	$(PY) -m ruff check composer bot tests benchmarks
	$(PY) -m pytest

deps: system-deps $(STAMP)

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing system packages:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

bench: deps
	$(PY) benchmarks/sampler_bench.py --style classical
	$(PY) benchmarks/render_bench.py
	$(PY) benchmarks/bot_bench.py

# Rebuilds what ships: each style's recipe is in composer/styles.py (1 thread each: `make -j2 train-all`
# trains two styles at a time on a 2-core machine).
train-all: $(addprefix train-,$(STYLES)) train-harmony

# The harmoniser (models/_harmony/chorales): chords learnt from the Bach chorales, a minute or two.
train-harmony: deps
	$(PY) -m composer train-harmony

train-%: deps
	$(PY) -m composer train --style $* --corpus

evaluate: deps
	$(PY) -m composer evaluate
