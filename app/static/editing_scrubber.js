// Editing tab: an inpainting run (RePaint beside the naive method) scrubbed move by move, or an interpolation strip
// scrubbed by t, in the page: a slider move sends no request.
// Runs as the gr.HTML's js_on_load (element, props, watch come from gradio) through scrub.js's S.mount, which owns
// the version guard, the slider, Play/Pause and failures; this file says only what it loads and paints. The t the
// browser tests read after a paint (data-t) is the slider's value: the move for inpainting, t for interpolation.
//
// The payload (props.value, JSON, from app/editing_payload.py), frames uint8 ([−1, 1] → 0 … 255), (F, H, W, C):
//   kind "inpaint": version; T; height, width, channels;
//     repaint, naive: {t: the paper's t at each position 0 … M (position k: x after k moves; 0: x_T; M: the result, t = 0),
//       down: per move, a reverse step (true) or a forward jump; jump: per move, the climb back up it is in or
//       has last made; num_jumps; keep: the positions whose frames were kept; x_t, x0_hat: those frames}
//   kind "interpolate": version; T; height, width, channels; points (P); t: the paper's t of each recorded frame
//     (T … 0); strips: {slerp, lerp}: frames (F·P, H, W, C), frame f's point i at f·P + i
(() => {
  const S = window.DDPMScrub;
  const $ = (selector) => element.querySelector(selector);
  const state = { data: null, cursor: null };

  // frame f of (F, H, W, C) uint8 frames onto a canvas
  function frame(canvas, frames, f, p) {
    const n = p.height * p.width * p.channels;
    S.paint(canvas, p.height, p.width, p.channels, (k) => frames[f * n + k]);
  }

  // ---------------------------------------------------------------- inpainting
  // The caption of position k of a run (x after its k-th move; 0: x_T): mirrors editing_payload.py::move_caption.
  function moveCaption(r, k) {
    const m = r.down.length, jumps = r.num_jumps;
    if (k === 0) return `x_T, the start (t = ${r.t[0]}): ${m} moves follow, with ${jumps} jumps back up.`;
    const i = k - 1, t = r.t[i], next = r.t[k];  // the move that led here
    if (k === m) return `Move ${m} of ${m}: t = ${t} → 0, the result, after ${jumps} jumps back up.`;
    if (r.down[i]) {
      const j = r.jump[i];
      const soFar = jumps ? (j ? `; after jump ${j} of ${jumps}` : `; no jump yet (${jumps} to come)`) : "";
      return `Move ${k} of ${m}: reverse step t = ${t} → ${next}${soFar}.`;
    }
    return `Move ${k} of ${m}: jump ${r.jump[i]} of ${jumps}, t = ${t} → ${next} (noise added).`;
  }

  // t against the move index, drawn once (again when its width changes: S.fitWidth); the cursor follows the slider
  function movesPlot(canvas, r, T) {
    S.fitWidth(canvas);
    let cursor = movesBackground(canvas, r, T);
    return (k) => {
      if (S.fitWidth(canvas)) cursor = movesBackground(canvas, r, T);
      cursor(k);
    };
  }

  function movesBackground(canvas, r, T) {
    const W = canvas.width, H = canvas.height, left = 44, right = 10, top = 10, bottom = 30;
    const m = r.t.length - 1;
    const x = (k) => left + ((W - left - right) * k) / Math.max(m, 1);
    const y = (t) => top + ((H - top - bottom) * (T - t)) / T;
    const background = S.whiteCanvas(W, H), ctx = background.getContext("2d");
    ctx.strokeStyle = "#ccc";
    ctx.strokeRect(left, top, W - left - right, H - top - bottom);
    ctx.lineWidth = 1.6;
    r.down.forEach((down, k) => {  // each move, blue down, orange up
      ctx.strokeStyle = down ? "#3b5bdb" : "#f08c00";
      ctx.beginPath();
      ctx.moveTo(x(k), y(r.t[k]));
      ctx.lineTo(x(k + 1), y(r.t[k + 1]));
      ctx.stroke();
    });
    ctx.fillStyle = "#333";
    ctx.font = "11px sans-serif";
    ctx.fillText(`t = ${T}`, 2, top + 8);
    ctx.fillText("t = 0", 2, H - bottom);
    ctx.textAlign = "center";
    const axis = `move (0 … ${m}); blue: reverse steps, orange: jumps back up`;  // on a phone, two lines
    if (ctx.measureText(axis).width <= W - 8) ctx.fillText(axis, (W + left) / 2, H - 6);
    else {
      ctx.fillText(`move (0 … ${m})`, (W + left) / 2, H - 17);
      ctx.fillText("blue: reverse steps, orange: jumps back up", W / 2, H - 4);
    }
    return (k) => {
      const c = canvas.getContext("2d");
      c.drawImage(background, 0, 0);
      c.fillStyle = "rgb(220, 40, 40)";
      c.fillRect(Math.round(x(k)) - 1, top, 2, H - top - bottom);
      c.beginPath();
      c.arc(x(k), y(r.t[k]), 4, 0, 2 * Math.PI);
      c.fill();
    };
  }

  function showInpaint(k) {
    const p = state.data, r = p.repaint, n = p.naive;
    k = Math.max(0, Math.min(r.t.length - 1, Math.round(k)));
    const f = S.nearest(r.keep, k);
    frame($('[data-panel="repaint_xt"]'), p.frames.repaint_xt, f, p);
    frame($('[data-panel="repaint_x0"]'), p.frames.repaint_x0, f, p);
    // the naive run (monotone in t) at the position whose t is nearest RePaint's
    const j = S.nearest(n.keep.map((pos) => n.t[pos]), r.t[k]);
    frame($('[data-panel="naive_xt"]'), p.frames.naive_xt, j, p);
    frame($('[data-panel="naive_x0"]'), p.frames.naive_x0, j, p);
    const shown = r.keep[f] === k ? "" : ` (frame of move ${r.keep[f]}, the nearest kept)`;
    $(".caption").innerHTML = `<b>${moveCaption(r, k)}</b>${shown} Naive run at t = ${n.t[n.keep[j]]}.`;
    state.cursor(k);
    return k;
  }

  // ---------------------------------------------------------------- interpolation
  // a strip of P frames side by side, 1 px white between
  function strip(canvas, frames, f, p) {
    const P = p.points, h = p.height, w = p.width, c = p.channels, n = h * w * c;
    const W = P * (w + 1) - 1;
    S.paint(canvas, h, W, c, (k) => {
      const pixel = Math.floor(k / c), ch = k % c;
      const y = Math.floor(pixel / W), x = pixel % W, i = Math.floor(x / (w + 1)), xi = x % (w + 1);
      if (xi === w) return 255;
      return frames[(f * P + i) * n + (y * w + xi) * c + ch];
    });
  }

  function showInterpolation(t) {
    const p = state.data;
    t = Math.max(0, Math.min(p.T, Math.round(t)));
    const f = S.nearest(p.t, t);
    strip($('[data-strip="slerp"]'), p.frames.slerp, f, p);
    strip($('[data-strip="lerp"]'), p.frames.lerp, f, p);
    $(".caption").innerHTML = p.t[f] === 0
      ? "<b>t = 0</b>: the samples. Drag the slider right to watch the whole strip come out of its noise."
      : `<b>t = ${p.t[f]}</b> (the recorded step nearest t = ${t}): every point of both strips at this t.`;
    return t;
  }

  // ---------------------------------------------------------------- payloads
  function load(p) {
    if (p.kind === "inpaint") {
      p.frames = {
        repaint_xt: S.bytes(p.repaint.x_t), repaint_x0: S.bytes(p.repaint.x0_hat),
        naive_xt: S.bytes(p.naive.x_t), naive_x0: S.bytes(p.naive.x0_hat),
      };
      state.cursor = movesPlot($("canvas.moves"), p.repaint, p.T);
    } else {
      p.frames = { slerp: S.bytes(p.strips.slerp), lerp: S.bytes(p.strips.lerp) };
    }
    state.data = p;
  }

  const show = (value) => (state.data.kind === "inpaint" ? showInpaint(value) : showInterpolation(value));
  // Play: a run's moves go forward (towards the result); a strip's t goes down (towards the samples)
  const direction = element.querySelector(".scrubber").dataset.direction === "down" ? -1 : 1;
  S.mount(element, props, watch, { direction, load, show });
})();
