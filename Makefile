# Two commands matter: `make demo` and `make test`. Both set up .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup test lint demo screenshot guide-screenshots bench bench-app gpu-suite bundle bundle-test clean

$(STAMP): pyproject.toml setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

# mypy reads its files and settings from [tool.mypy] in pyproject.toml; its cache is .mypy_cache.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

test: lint
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest

# Opens the app on the demo case; on a machine without a display it runs the same demo offscreen
# and saves what the window shows instead, so the command still proves the whole path works.
demo: setup
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ] || [ "$$(uname)" = Darwin ]; then \
		$(PY) -m app --demo; \
	else \
		echo "No display found: running the demo offscreen; the window is saved to demo-screenshot.png"; \
		QT_QPA_PLATFORM=offscreen $(PY) -m app --demo --screenshot demo-screenshot.png; \
	fi

bench: setup
	$(PY) -m core bench

# The prepared GPU run, benchmarks/gpu_suite.py: one command for one <=10-minute call on a bare GPU machine,
# where there is no .venv (the system python3 with the project's dependencies runs it).
# `make gpu-suite OUT=DIR MINUTES=8.5`; `make gpu-suite TINY=1` rehearses every stage on a CPU.
OUT ?= gpu-suite-out
MINUTES ?= 8.5
gpu-suite:
	$(if $(wildcard $(PY)),$(PY),$(PYTHON)) benchmarks/gpu_suite.py --out $(OUT) --minutes $(MINUTES) $(if $(TINY),--tiny)

bench-app: setup
	$(PY) benchmarks/app_responsiveness.py

# A real window under Xvfb (installed here if missing); xvfb's default 640x480 screen is too small.
XVFB := xvfb-run -a -s "-screen 0 1920x1080x24"
XVFB_PKGS := xvfb xauth libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-xinerama0 libxcb-randr0 libxcb-render-util0 libxcb-image0 libxkbcommon-x11-0
# Every package is checked: Qt's xcb plugin aborts when any one of them is missing.
xvfb:
	@missing=$$(for p in $(XVFB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

screenshot: setup xvfb
	QT_QPA_PLATFORM=xcb $(XVFB) $(PY) -m app --demo --screenshot docs/screenshot.png

guide-screenshots: setup xvfb
	QT_QPA_PLATFORM=xcb $(XVFB) $(PY) -m app --guide-screenshots docs

# The installer (installer/README.md): dist/HoechstScore/ and dist/HoechstScore-<version>-linux-x86_64.tar.gz.
# HOECHSTSCORE_BUNDLE_VARIANT=gpu make bundle keeps the CUDA libraries (several GB).
BUNDLE_STAMP := $(VENV)/.bundle-installed
$(BUNDLE_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[dev,bundle]'
	@touch $(BUNDLE_STAMP)

bundle: $(BUNDLE_STAMP)
	installer/build.sh $(PY)

# Runs the bundle outside the tree with no Python on PATH; builds it first when dist/ has none.
bundle-test: $(BUNDLE_STAMP)
	installer/bundle_test.sh $(PY)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache build dist
