# meshforge: `make run` installs everything and starts the stack; `make test` runs the test suite.
.PHONY: install run test lint format bench

install:
	scripts/bootstrap

run: install
	npm run build --prefix ui
	.venv/bin/honcho start -f Procfile

test: install
	.venv/bin/ruff check .
	.venv/bin/pytest

lint: install
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

format: install
	.venv/bin/ruff format .

bench: install
	.venv/bin/python -m benchmarks.pipeline
	.venv/bin/python -m benchmarks.postprocess
	.venv/bin/python -m benchmarks.view_consistency
	.venv/bin/python -m benchmarks.flux
	.venv/bin/python -m benchmarks.triposr
