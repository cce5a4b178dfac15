"""Entry point for ``python -m pipelines.sampler_sweep``: the code is in :mod:`pipelines.training.sampler_sweep`."""

from pipelines.training.sampler_sweep import main

if __name__ == "__main__":
    main()
