"""Entry point for ``python -m pipelines.classifier``: the code is in :mod:`pipelines.training.classifier`."""

from pipelines.training.classifier import main

if __name__ == "__main__":
    main()
