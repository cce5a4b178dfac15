"""What the browser scrubbers receive once per setup or run: compact arrays (base64), so a slider move is drawn in
the page without a request. The mapping to bytes is pipelines.trajectory.to_uint8, mirrored in app/static/scrub.js.

- Forward: x₀ as uint8 (exact: the model's input is byte/127.5 − 1), ε as float16 (≤ 2⁻¹¹ relative error, a
  quarter of a grey level at most), the schedule's per-t tables as float32. 64 px: ~45 KB; 256 px: ~0.7 MB.
- Reverse: each panel's recorded frames as one PNG atlas (frames stacked vertically; lossless, so the browser shows
  exactly the server's frames), thinned to a byte budget, with each frame's t and the schedule's numbers.
"""

from __future__ import annotations

import base64
import io
import json
import time

import numpy as np
import torch
from PIL import Image

from app import rendering
from app.reverse_session import step_of
from pipelines.class_decision import ClassDecision
from pipelines.schedules import ScheduleTables
from pipelines.spectral import radial_power_spectrum
from pipelines.trajectory import Trajectory, frames_to_keep, from_uint8, to_uint8

REVERSE_BUDGET_BYTES = 2 * 2**20


def b64(array: np.ndarray) -> str:
    """An array's little-endian bytes as base64."""
    return base64.b64encode(np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()).decode()


def version() -> int:
    """Increasing across calls: the page keeps the newest payload when two setups race."""
    return time.monotonic_ns()


def schedule_arrays(tables: ScheduleTables) -> dict[str, str]:
    """The per-t tables over the paper's t = 0 … T (t = 0 is the data: ᾱ = 1; β and log SNR not finite)."""
    paper = tables.by_paper_t
    f32 = lambda table: table.numpy().astype(np.float32)
    return {
        "sqrt_alpha_bar": b64(f32(paper.sqrt_alphas_cumprod)),
        "sqrt_one_minus_alpha_bar": b64(f32(paper.sqrt_one_minus_alphas_cumprod)),
        "beta": b64(f32(paper.betas)),
        "alpha_bar": b64(f32(paper.alphas_cumprod)),
        "log_snr": b64(f32(paper.log_snr)),
    }


def hwc(x: torch.Tensor) -> torch.Tensor:
    """(C, H, W) -> (H, W, C)."""
    return x.permute(1, 2, 0).contiguous()


def forward_payload(x0: torch.Tensor, noise: torch.Tensor, tables: ScheduleTables) -> str:
    """Everything a forward frame needs, for x₀ and ε of shape (C, H, W)."""
    c, h, w = x0.shape
    return json.dumps(
        {
            "version": version(),
            "T": tables.num_timesteps,
            "height": h,
            "width": w,
            "channels": c,
            "x0": b64(hwc(to_uint8(x0)).numpy()),
            "eps": b64(hwc(noise).numpy().astype(np.float16)),
            "spectrum": spectrum_payload(x0, noise),
            **schedule_arrays(tables),
        }
    )


def spectrum_payload(x0: torch.Tensor, noise: torch.Tensor) -> dict[str, list[float]]:
    """The radially averaged power spectra of x₀ and of the fixed ε, both (C, H, W) (pipelines.spectral): the page
    scales them by ᾱ_t and 1 − ᾱ_t at each t, and marks where they cross."""
    signal, eps = radial_power_spectrum(x0[None]), radial_power_spectrum(noise[None])
    return {
        "freqs": [round(float(f), 6) for f in signal.freqs],
        "x0": [float(f"{p:.5g}") for p in signal.power.tolist()],
        "eps": [float(f"{p:.5g}") for p in eps.power.tolist()],
    }


def png_b64(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", optimize=False, compress_level=6)
    return base64.b64encode(buffer.getvalue()).decode()


def atlas_frames(png: str, frame_height: int) -> list[np.ndarray]:
    """A base64 PNG atlas back into its frames (the inverse of :func:`atlas`)."""
    image = np.asarray(Image.open(io.BytesIO(base64.b64decode(png))))
    return [image[k : k + frame_height] for k in range(0, image.shape[0], frame_height)]


def atlas(frames: list[np.ndarray]) -> np.ndarray:
    """Equal-sized frames stacked top to bottom."""
    return np.concatenate(frames, axis=0)


def reverse_spectra(trajectory: Trajectory, keep: list[int], data_spectrum: dict | None) -> dict:
    """The power spectrum of x̂₀ at each kept frame and of the result (pipelines.spectral), beside the training
    data's mean spectrum when the model has one (its data_spectrum.json)."""
    spectra = [radial_power_spectrum(from_uint8(trajectory.pred_original[k])) for k in keep]
    final = trajectory.final if trajectory.final is not None else from_uint8(trajectory.pred_original[keep[-1]])
    rounded = lambda s: [float(f"{p:.4g}") for p in s.power.tolist()]
    return {
        "freqs": [round(float(f), 6) for f in spectra[0].freqs],
        "x0_hat": [rounded(s) for s in spectra],
        "result": rounded(radial_power_spectrum(final.clamp(-1, 1))),
        "data": data_spectrum["power"] if data_spectrum else None,
    }


def class_payload(trajectory: Trajectory, keep: list[int], decision: ClassDecision, names: list[str]) -> dict:
    """The classifier's probabilities for x̂₀ at each kept frame and for the result, (frames + 1, B, classes), and
    for each image its final class and the paper's t from which that class stays on top (0: only the result)."""
    probs = decision.probs[[*keep, len(trajectory)]]
    t_of = [*trajectory.t_values, 0]
    return {
        "names": names,
        "probs": [[[round(p, 3) for p in image] for image in frame] for frame in probs.tolist()],
        "final": decision.final,
        "decided_t": [t_of[k] for k in decision.decided],
    }


def thinned_atlases(grids: dict[str, list[np.ndarray]], budget_bytes: int) -> tuple[list[int], dict[str, str]]:
    """Per panel, a PNG atlas (base64) of the frames kept, and which: every frame, then a third fewer at a time
    (evenly spread, the first and last kept) until the atlases fit ``budget_bytes`` or two frames are left."""
    keep = list(range(len(next(iter(grids.values())))))
    while True:
        atlases = {name: png_b64(atlas([frames[k] for k in keep])) for name, frames in grids.items()}
        if sum(map(len, atlases.values())) <= budget_bytes or len(keep) <= 2:
            return keep, atlases
        keep = [keep[i] for i in frames_to_keep(len(keep), max(2, len(keep) * 2 // 3))]


def reverse_payload(
    trajectory: Trajectory,
    tables: ScheduleTables,
    budget_bytes: int = REVERSE_BUDGET_BYTES,
    data_spectrum: dict | None = None,
    classes: tuple[ClassDecision, list[str]] | None = None,
    num_steps: int | None = None,
    stopped: bool = False,
) -> str:
    """A recorded run for the browser: per panel (x_t, x̂₀, ε̂) a PNG atlas of its frames, the result x₀ (shown at
    t = 0; a run still going, or stopped, has none: ``complete`` is false), each frame's t → t′, its model
    evaluation and the step (of ``num_steps``, the N asked for; Heun evaluates 2N − 1 times) it belongs to, and the
    schedule. Frames are thinned evenly (first and last kept) until the payload fits ``budget_bytes``."""
    grids = {
        "x_t": [rendering.uint8_grid(f) for f in trajectory.samples],
        "x0_hat": [rendering.uint8_grid(f) for f in trajectory.pred_original],
        "eps_hat": [rendering.uint8_grid(f) for f in trajectory.pred_epsilon],
    }
    complete = trajectory.final is not None  # a run still going: no result yet, so no frame at t = 0
    final = to_uint8(trajectory.final) if complete else trajectory.samples[-1]
    result = rendering.uint8_grid(final)
    no_noise = rendering.uint8_grid(torch.full_like(final, 128))  # ε̂ at t = 0: there is no noise left to predict
    learned = trajectory.variance_fraction is not None
    if learned:  # v of a learned Σ_θ, per pixel: 0 (black) at β̃_t, 1 (white) at β_t
        grids["v"] = [rendering.uint8_grid(f) for f in trajectory.variance_fraction]
    keep, atlases = thinned_atlases(grids, budget_bytes)
    frame_h, frame_w = result.shape[:2]
    variance = None
    if learned:
        v_mean = [float(trajectory.variance_fraction[k].float().mean() / 255) for k in keep]
        by_t = tables.by_paper_t
        variance = {
            "mean": v_mean,  # per kept frame (the last step's is what the model says; that step adds no noise)
            "posterior_variance": b64(by_t.posterior_variance.numpy().astype(np.float32)),  # β̃ by the paper's t
        }
    n, evaluations = num_steps or trajectory.num_steps, trajectory.num_steps
    return json.dumps(
        {
            "version": version(),
            "T": tables.num_timesteps,
            "frame_height": frame_h,
            "frame_width": frame_w,
            "num_steps": n,
            "evaluations": evaluations,
            "complete": complete,
            "stopped": stopped,  # by its user (incomplete for good); else an incomplete run is still going
            "t": [trajectory.t_values[k] for k in keep],
            "t_prev": [trajectory.t_prev_values[k] for k in keep],
            "evaluation": [trajectory.step_indices[k] + 1 for k in keep],
            "step": [step_of(trajectory.step_indices[k], n, evaluations) for k in keep],
            "atlas": atlases,
            "result": png_b64(result),
            "no_noise": png_b64(no_noise),
            "spectrum": reverse_spectra(trajectory, keep, data_spectrum),
            "classes": class_payload(trajectory, keep, *classes) if classes else None,
            "variance": variance,
            **schedule_arrays(tables),
        }
    )


def race_payload(runs: list[tuple[str, Trajectory, float]], tables: ScheduleTables) -> str:
    """A race for the browser: per run (name, recorded trajectory, its wall time) the PNG atlases of x_t and x̂₀,
    each frame's log SNR, t and NFE so far, and its result; the schedule's log SNR by the paper's t, so the page can
    align every run at the slider's noise level. Each run gets an equal share of the byte budget."""
    budget = REVERSE_BUDGET_BYTES // max(1, len(runs))
    out = []
    for name, trajectory, wall_s in runs:
        grids = {
            "x_t": [rendering.uint8_grid(f) for f in trajectory.samples],
            "x0_hat": [rendering.uint8_grid(f) for f in trajectory.pred_original],
        }
        keep, atlases = thinned_atlases(grids, budget)
        result = rendering.uint8_grid(to_uint8(trajectory.final))
        out.append(
            {
                "name": name,
                "num_evaluations": trajectory.num_steps,
                "wall_s": round(wall_s, 2),
                "frame_height": result.shape[0],
                "frame_width": result.shape[1],
                "log_snr": [round(trajectory.log_snrs[k], 4) for k in keep],
                "t": [trajectory.t_values[k] for k in keep],
                "nfe": [trajectory.nfe_so_far[k] for k in keep],
                "atlas": atlases,
                "result": png_b64(result),
            }
        )
    return json.dumps(
        {"version": version(), "T": tables.num_timesteps, "log_snr": schedule_arrays(tables)["log_snr"], "runs": out}
    )
