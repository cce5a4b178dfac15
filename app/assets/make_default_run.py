"""Record the run the reverse tab opens with, so there is something to scrub before anyone presses Generate:
the default model, the tab's default sampler and settings, seed 0. Rerun it whenever the default model changes:

    python -m app.assets.make_default_run
"""

import json
from pathlib import Path

from app import models, plans, settings
from app.callbacks import reverse
from app.scrub_payload import reverse_payload
from app.validation import check_model

HERE = Path(__file__).parent
DEFAULT_RUN = HERE / "default_run.json"
BUDGET_BYTES = 1 * 2**20  # every visitor's page loads it: half the budget of a run


def main() -> None:
    # what the tab's controls start on: the model's own Σ_t, the class, w, the model's recommended guidance
    # interval and rescale, and its w per class where it has them
    run = dict(sampler=plans.DEFAULT_SAMPLER, steps=plans.DEFAULT_STEPS, eta=0.0, clip=True, seed=0, batch_size=4)
    outputs = list(
        reverse.reverse_generate(settings.DEFAULT_MODEL, **run, **reverse.tab_defaults(settings.DEFAULT_MODEL))
    )
    state = outputs[-1]["state"]
    pipe = check_model(state.model)
    payload = json.loads(
        reverse_payload(
            state.trajectory,
            pipe.scheduler.tables,
            BUDGET_BYTES,
            data_spectrum=models.data_spectrum(state.model),
            classes=reverse.decided_classes(pipe, state.trajectory),
        )
    )
    payload["version"] = 0  # older than any run of a live server
    payload["model"] = settings.DEFAULT_MODEL
    payload["sampler"] = plans.DEFAULT_SAMPLER
    DEFAULT_RUN.write_text(json.dumps(payload))
    print(f"{DEFAULT_RUN}: {DEFAULT_RUN.stat().st_size / 2**10:.0f} KB, {len(payload['t'])} frames")


if __name__ == "__main__":
    main()
