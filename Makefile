.PHONY: style quality test test-fast run

style:
	ruff format app pipelines tests benchmarks app.py
	ruff check --fix app pipelines tests benchmarks app.py

quality:
	ruff check app pipelines tests benchmarks app.py

test:
	python -m pytest -n 2 --dist loadfile

# the unit tier: no app launched, no real checkpoint (the whole suite is `make test`)
test-fast:
	python -m pytest -m "not e2e and not slow"

run:
	python app.py
