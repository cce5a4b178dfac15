"""Entry point for ``python -m pipelines.evaluate``: the code is in :mod:`pipelines.training.evaluate`."""

from pipelines.training.evaluate import main

if __name__ == "__main__":
    main()
