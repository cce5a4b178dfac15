.PHONY: style quality test run

style:
	ruff format app pipelines tests benchmarks app.py
	ruff check --fix app pipelines tests benchmarks app.py

quality:
	ruff check app pipelines tests benchmarks app.py

test:
	python -m pytest

run:
	python app.py
