"""Entry point for ``python -m pipelines.train``: the code is in :mod:`pipelines.training.train`."""

from pipelines.training.train import main

if __name__ == "__main__":
    main()
