"""The editing tab's recorded runs and what its scrubbers receive (app/static/editing_scrubber.js).

Inpainting: a RePaint run is a list of moves, reverse steps t → t' and forward jumps t → t + stride back up; position
k of the slider is x after k moves (0: x_T; M, after the last move: the result). Frames are uint8 (the mapping of
pipelines.trajectory.to_uint8, [−1, 1] → 0 … 255), (H, W, C), thinned evenly to a count; the list of t and jumps is
sent whole, so the caption and the t-curve are exact at every position.

Interpolation: the strip of samples is recorded at every step (thinned to a byte budget), all points together.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import torch

from app.scrub_payload import b64, version
from app.serving.session_memory import RELEASED, ledger
from app.validation import UserError
from pipelines.trajectory import frames_to_keep, to_uint8


@dataclass
class MoveRecord:
    """One run's moves (RePaint or the naive method), as the page and /inpaint_frame read them."""

    t: list[int]  # the paper's t at each position 0 … M (M: the result, t = 0)
    down: list[bool]  # each move: a reverse step (True) or a forward jump
    jump: list[int]  # at each position: the climb back up the run is in or has last made
    num_jumps: int
    keep: list[int]  # the positions whose frames are kept
    x_t: list[torch.Tensor] = field(default_factory=list)  # (C, H, W) uint8 at each kept position
    x0_hat: list[torch.Tensor] = field(default_factory=list)  # the latest x̂₀ there (the result at M)

    @property
    def num_moves(self) -> int:
        return len(self.down)

    @property
    def nbytes(self) -> int:
        return sum(x.numel() for x in (*self.x_t, *self.x0_hat))

    def record(self, position: int, x: torch.Tensor, x0_hat: torch.Tensor) -> None:
        """Keep position's frame (x, x̂₀: (1, C, H, W) in [−1, 1]) if it is one of the kept positions."""
        if position in self._kept:
            self.x_t.append(to_uint8(x[0].detach().cpu()))
            self.x0_hat.append(to_uint8(x0_hat[0].detach().cpu()))

    def __post_init__(self):
        self._kept = set(self.keep)

    def nearest_frame(self, position: int) -> int:
        """The index (in the kept frames) of the kept position nearest ``position``."""
        return min(range(len(self.keep)), key=lambda i: abs(self.keep[i] - position))


def move_record(timesteps: list[int], downs: list[bool], stride: int, max_frames: int) -> MoveRecord:
    """The t and jumps of a run with these table indices (pipelines.repaint.repaint_timesteps), before it runs.

    x starts at the first index; after each move at index v, down or up, it is at v − stride, where the schedule
    asks the model next (a reverse step at v goes to v − stride; a climb's entries count from the level above, as
    diffusers' RePaint schedule does); below index 0 it is the data, t = 0. Each move is one stride of t, but those
    to and from t = 0."""
    t = [timesteps[0] + 1, *(max(0, v - stride + 1) for v in timesteps)]  # the paper's t = table index + 1
    jump, climbs, went_down = [], 0, True
    for down in downs:
        climbs += not down and went_down
        jump.append(climbs)
        went_down = down
    jump.append(climbs)
    return MoveRecord(t, downs, jump, climbs, frames_to_keep(len(t), max_frames))


def move_caption(run: MoveRecord, position: int) -> str:
    """What position k of a run shows (x after its k-th move; 0: x_T), in words: mirrored by editing_scrubber.js."""
    m, jumps = run.num_moves, run.num_jumps
    if position == 0:
        return f"x_T, the start (t = {run.t[0]}): {m} moves follow, with {jumps} jumps back up."
    i = position - 1  # the move that led here
    t, t_next = run.t[i], run.t[position]
    if position == m:
        return f"Move {m} of {m}: t = {t} → 0, the result, after {jumps} jumps back up."
    if run.down[i]:
        j = run.jump[i]
        so_far = (f"; after jump {j} of {jumps}" if j else f"; no jump yet ({jumps} to come)") if jumps else ""
        return f"Move {position} of {m}: reverse step t = {t} → {t_next}{so_far}."
    return f"Move {position} of {m}: jump {run.jump[i]} of {jumps}, t = {t} → {t_next} (noise added)."


@dataclass
class InpaintState:
    """One user's last inpainting run (gr.State), counted in the sessions' memory bound."""

    repaint: MoveRecord | None
    naive: MoveRecord | None

    @property
    def nbytes(self) -> int:
        return sum(r.nbytes for r in (self.repaint, self.naive) if r is not None)

    def release(self) -> None:
        self.repaint = self.naive = None


def admitted(state: InpaintState) -> InpaintState:
    return ledger.admit(state)


def require_inpainting(state: InpaintState | None) -> InpaintState:
    if state is None:
        raise UserError("Run the inpainting first; then any move of it can be shown.")
    if state.repaint is None:
        raise UserError(RELEASED.format(again="run the inpainting again"))
    ledger.touch(state)
    return state


def _frames(frames: list[torch.Tensor]) -> str:
    """(F, C, H, W) uint8 → base64 of (F, H, W, C)."""
    return b64(torch.stack(frames).permute(0, 2, 3, 1).contiguous().numpy())


def inpaint_payload(state: InpaintState, shape: tuple[int, int, int], T: int) -> str:
    """The inpainting scrubber's JSON: both runs' t, jumps and kept frames."""
    c, h, w = shape
    run = lambda r: {
        "t": r.t,
        "down": r.down,
        "jump": r.jump,
        "num_jumps": r.num_jumps,
        "keep": r.keep,
        "x_t": _frames(r.x_t),  # uint8, [−1, 1] → 0 … 255, (F, H, W, C)
        "x0_hat": _frames(r.x0_hat),
    }
    body = {"repaint": run(state.repaint), "naive": run(state.naive)}
    return json.dumps(
        {"version": version(), "kind": "inpaint", "T": T, "height": h, "width": w, "channels": c, **body}
    )


def interpolation_payload(t: list[int], strips: dict[str, list[torch.Tensor]], shape, T: int, points: int) -> str:
    """The interpolation scrubber's JSON: each strip's frames at the recorded t (T … 0), all points of a frame
    side by side. ``strips``: name → frames (P, C, H, W) uint8, one per t."""
    c, h, w = shape
    frames = {name: _frames([f for frame in seq for f in frame]) for name, seq in strips.items()}  # (F·P, H, W, C)
    head = {"version": version(), "kind": "interpolate", "T": T, "height": h, "width": w, "channels": c}
    return json.dumps({**head, "points": points, "t": t, "strips": frames})
