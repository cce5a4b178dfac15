"""Each model's defaults in the reverse tab (steps N, batch) and its work cap, from what its UNet costs on a CPU like a
free Hugging Face CPU Space (2 vCPU).

The figures are `python benchmarks/hub_architectures.py` (docs/PERFORMANCE.md, "What each Hub model costs"): one UNet
call of each allowlisted architecture with random weights on this project's 2-core CPU, the smaller median of 2 torch
threads and 1 (other jobs shared the cores, which slows two threads most). A 256 px Hub model's call takes about 5 s
for one image and 20 s for four: its default run is one step of one image, the least there is (two steps, or two
images, would take 11 s).

Lookup: by registry name (the Hub allowlist), else by a loaded model's architecture (a local copy of a Hub model's
UNet gets its figures), else by size (any model of 256 px or more gets the 256 px defaults, without their figures);
any other model keeps the app's defaults (app.plans). A cap counts UNet calls × batch × pixels, as
``settings.MAX_WORK``; each is stated at the shipped MAX_WORK and scales with it, so a server that raises MAX_WORK
raises every model's cap in proportion.
"""

from __future__ import annotations

from dataclasses import dataclass

from app import settings
from app.models import HUB_SUFFIX

RUN_BUDGET_S = 10.0  # a default run on a free CPU Space
# what a run takes beyond its bare UNet calls (the solver's steps, recording, streaming): the benchmark's default runs
# took 0.96–1.02× their calls' median time; 1.1 leaves room for the page's streaming
RUN_OVERHEAD = 1.1
# the longest run a cap allows, about what the shipped MAX_WORK (1,000 calls of 4 images at 32 px) takes with the
# bundled default model on the same CPU
CAP_BUDGET_S = 45.0
LARGE_SIZE = 256  # px: a model this large or larger gets the 256 px defaults


@dataclass(frozen=True)
class Architecture:
    """A UNet architecture (the keys that tell the allowlisted ones apart) and what one call of it costs on a 2-vCPU
    CPU: the median seconds at batch 1 and at batch 4."""

    name: str
    sample_size: int
    block_out_channels: tuple[int, ...]
    parameters_m: float
    seconds_per_call: tuple[float, float]  # batch 1, batch 4

    def matches(self, unet_config) -> bool:
        return unet_config.get("sample_size") == self.sample_size and tuple(
            unet_config.get("block_out_channels") or ()
        ) == tuple(self.block_out_channels)

    def seconds(self, batch_size: int) -> float:
        """One call at ``batch_size``: linear through the two measured batches (a fixed cost, then per image)."""
        one, four = self.seconds_per_call
        return one + (batch_size - 1) * (four - one) / 3

    @property
    def download_mb(self) -> int:
        """Its fp32 safetensors weights."""
        return round(self.parameters_m * 4)


@dataclass(frozen=True)
class ModelDefaults:
    """A model's reverse-tab defaults and cap; ``architecture`` carries its measured cost when it is known."""

    steps: int
    batch: int
    max_work: int | None = None  # UNet calls × batch × pixels at the shipped MAX_WORK; None: MAX_WORK itself
    architecture: Architecture | None = None
    sampler: str | None = None  # its sampler, as users read its name; None: the app's

    @property
    def work_cap(self) -> int:
        """This server's cap for the model: ``max_work`` scaled as MAX_WORK is from its shipped value."""
        if self.max_work is None:
            return settings.MAX_WORK
        return self.max_work * settings.MAX_WORK // settings.DEFAULT_MAX_WORK

    def run_seconds(self, unet_calls: int, batch_size: int) -> float | None:
        """A run's time on a 2-vCPU CPU from the measured figures: its UNet calls × RUN_OVERHEAD (None: unmeasured)."""
        if self.architecture is None:
            return None
        return unet_calls * self.architecture.seconds(batch_size) * RUN_OVERHEAD


# Measured 2026-12-06 (docs/PERFORMANCE.md, hub_architectures), medians
def cap_of(architecture: Architecture) -> int:
    """A measured architecture's cap at the shipped MAX_WORK: the most UNet calls of one image whose run takes at most
    CAP_BUDGET_S (at least one), × its pixels. A batch of 4 costs less per image, so its runs within the cap are
    shorter."""
    calls = int(CAP_BUDGET_S // (architecture.seconds(1) * RUN_OVERHEAD))
    return max(1, calls) * architecture.sample_size**2


# seconds per call at batch 1 and 4: medians measured on 2026-12-06 (docs/PERFORMANCE.md, hub_architectures)
DDPM_CIFAR10 = Architecture("DDPM CIFAR-10, 32 px", 32, (128, 256, 256, 256), 35.7, (0.150, 0.418))
DDPM_256 = Architecture("DDPM 256 px", 256, (128, 128, 256, 256, 512, 512), 113.7, (5.01, 20.35))

# 32 px: the app's own steps and batch (app.plans: 15 and 4) fit the budget, ≈ 6.9 s
CIFAR10_DEFAULTS = ModelDefaults(steps=15, batch=4, max_work=cap_of(DDPM_CIFAR10), architecture=DDPM_CIFAR10)
# 256 px: one call of one image is half the budget; the cap is 8 calls of one image (or 2 of 4)
HUB_256_DEFAULTS = ModelDefaults(steps=1, batch=1, max_work=cap_of(DDPM_256), architecture=DDPM_256)
# any other model of 256 px or more: the same defaults and cap, without figures (its own speed is timed when loaded)
LARGE_DEFAULTS = ModelDefaults(HUB_256_DEFAULTS.steps, HUB_256_DEFAULTS.batch, HUB_256_DEFAULTS.max_work)

BY_NAME: dict[str, ModelDefaults] = {
    "google/ddpm-cifar10-32" + HUB_SUFFIX: CIFAR10_DEFAULTS,
    "google/ddpm-celebahq-256" + HUB_SUFFIX: HUB_256_DEFAULTS,
    "google/ddpm-cat-256" + HUB_SUFFIX: HUB_256_DEFAULTS,
    "google/ddpm-church-256" + HUB_SUFFIX: HUB_256_DEFAULTS,
    "google/ddpm-bedroom-256" + HUB_SUFFIX: HUB_256_DEFAULTS,
}
BY_ARCHITECTURE = (CIFAR10_DEFAULTS, HUB_256_DEFAULTS)


def by_name(name) -> ModelDefaults | None:
    """A listed model's defaults, known without loading it (None for a model not listed by name)."""
    return BY_NAME.get(name) if isinstance(name, str) else None


def for_unet(unet_config) -> ModelDefaults | None:
    """A loaded model's defaults from its UNet's config: a listed architecture's, else the 256 px ones for any model
    of 256 px or more, else None (the app's defaults)."""
    for defaults in BY_ARCHITECTURE:
        if defaults.architecture.matches(unet_config):
            return defaults
    size = unet_config.get("sample_size")
    largest = max(size) if isinstance(size, (list, tuple)) else size
    if isinstance(largest, int) and largest >= LARGE_SIZE:
        return LARGE_DEFAULTS
    return None


def measured_seconds_per_call(unet_config, batch_size: int) -> float | None:
    """One UNet call of a listed architecture at ``batch_size`` on a 2-vCPU CPU (None for any other)."""
    defaults = for_unet(unet_config)
    if defaults is None or defaults.architecture is None:
        return None
    return defaults.architecture.seconds(batch_size)
