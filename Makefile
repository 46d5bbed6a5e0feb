# meshforge: `make run` installs everything and starts the stack; `make test` runs the test suite.
.PHONY: install run test lint typecheck format bench

install:
	scripts/bootstrap

run: install
	npm run build --prefix ui
	.venv/bin/honcho start -f Procfile

test: install typecheck
	.venv/bin/ruff check .
	.venv/bin/pytest

lint: install typecheck
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

# mypy, as [tool.mypy] in pyproject.toml sets it. mypy can neither import a folder named flux-service nor
# follow the editable install's import hook, so build/typecheck/ links each <name>-service folder as the
# package it is installed as, <name>_service, and mypy checks the services there.
typecheck: install
	@mkdir -p build/typecheck
	@for folder in *-service; do ln -sfn "../../$$folder" "build/typecheck/$${folder%-service}_service"; done
	.venv/bin/mypy

format: install
	.venv/bin/ruff format .

# The benchmarks' full runs (about 7 minutes on 2 CPU cores, and about 10 more for the throughput ones,
# control_plane and pipelining; on a GPU, FLUX and TripoSR at full size with random weights). Each has a
# quick case (its docstring; tests/test_benchmarks.py and tests/test_throughput_benchmarks.py run them).
bench: install
	.venv/bin/python -m benchmarks.pipeline
	.venv/bin/python -m benchmarks.postprocess
	.venv/bin/python -m benchmarks.view_consistency
	.venv/bin/python -m benchmarks.flux
	.venv/bin/python -m benchmarks.triposr
	.venv/bin/python -m benchmarks.control_plane
	.venv/bin/python -m benchmarks.pipelining
