"""Entry point for ``python -m pipelines.guidance_sweep``: the code is in :mod:`pipelines.training.guidance_sweep`."""

from pipelines.training.guidance_sweep import main

if __name__ == "__main__":
    main()
