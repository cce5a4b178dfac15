// 2D lab: points in the plane, noised and denoised, drawn here in the page at every slider move: no request is sent.
// Runs as the gr.HTML's js_on_load (element, props, watch come from gradio), mounted by scrub.js's S.mount, which
// owns the version guard, the slider and failures; this file only paints.
//
// The payload (props.value, JSON, from app/lab_payload.py::lab_payload), sent once per setup, training or run:
//   version   increasing; an older payload never replaces a newer one
//   T, extent every panel shows [−extent, extent]² in the data's standardised units (y up)
//   points, highlighted: how many points are shown; the first `highlighted` of them have their paths drawn
//   x0, eps   float16 (points, 2): the data and each point's fixed ε; x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε is computed here
//   sqrt_alpha_bar, sqrt_one_minus_alpha_bar, alpha_bar: float32 (T + 1), by the paper's t (t = 0: the data)
//   field_t   the t values of the density and score frames (0 … T)
//   density   {grid: G, frames: uint8 (K, G, G), row 0 at y = −extent, byte = 255·√(q/max q), what: exact | kde}
//   arrows    A: the score arrows start on an A × A grid over the view, row by row from the bottom
//   fields    null, or {learned (null before training), exact (null unless the data is the Gaussian mixture):
//             float16 (K, A², 2), zero at t = 0; error, norm (with both): per field t, the learned score's mean error
//             ‖s_θ − ∇log q_t‖ over the shown points noised to t and the exact score's mean norm (null at t = 0)}
//   runs      [{key: ddpm | ddim | ode, name, t: the paper's t of each recorded frame (T … 0), frames: float16
//             (K, points, 2), nfe, wall_s}]
(() => {
  const S = window.DDPMScrub;
  const $ = (selector) => element.querySelector(selector);
  const state = { lab: null };
  const CLOUD = "rgba(20, 20, 40, 0.55)";
  const PATH_COLORS = ["#e8590c", "#1c7ed6", "#2b8a3e", "#ae3ec9", "#f08c00", "#0ca678", "#d6336c", "#5f3dc4"];

  function load(p) {
    const G = p.density.grid;
    const densityBytes = S.bytes(p.density.frames);
    const lab = {
      ...p,
      x0: S.float16(p.x0), eps: S.float16(p.eps),
      a: S.float32(p.sqrt_alpha_bar), b: S.float32(p.sqrt_one_minus_alpha_bar), alphaBar: S.float32(p.alpha_bar),
      heat: p.field_t.map((_, k) => heatMap(densityBytes.subarray(k * G * G, (k + 1) * G * G), G)),
      learned: p.fields && p.fields.learned ? S.float16(p.fields.learned) : null,
      exact: p.fields && p.fields.exact ? S.float16(p.fields.exact) : null,
      runs: p.runs.map((r) => ({ ...r, frames: S.float16(r.frames) })),
    };
    state.lab = lab;
  }

  // A density frame as a small canvas: white (none) to light blue (the frame's maximum), y up.
  function heatMap(bytes, G) {
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = G;
    const ctx = canvas.getContext("2d");
    const image = ctx.createImageData(G, G);
    for (let row = 0; row < G; row++) {
      for (let col = 0; col < G; col++) {
        const v = bytes[(G - 1 - row) * G + col] / 255, o = 4 * (row * G + col);
        image.data[o] = 255 - 140 * v;
        image.data[o + 1] = 255 - 95 * v;
        image.data[o + 2] = 255 - 25 * v;
        image.data[o + 3] = 255;
      }
    }
    ctx.putImageData(image, 0, 0);
    return canvas;
  }

  // ---------------------------------------------------------------- drawing, in data units
  function view(canvas, lab) {
    const ctx = canvas.getContext("2d");
    const W = canvas.width, H = canvas.height, e = lab.extent;
    return {
      ctx,
      x: (v) => ((v + e) / (2 * e)) * W,
      y: (v) => H - ((v + e) / (2 * e)) * H,
      clear(heat, alpha) {
        ctx.globalAlpha = 1;
        ctx.fillStyle = "#fff";
        ctx.fillRect(0, 0, W, H);
        if (heat) {
          ctx.globalAlpha = alpha;
          ctx.imageSmoothingEnabled = true;  // a density, not pixels
          ctx.drawImage(heat, 0, 0, W, H);
          ctx.globalAlpha = 1;
        }
      },
    };
  }

  function drawCloud(v, n, px, py) {
    v.ctx.fillStyle = CLOUD;
    for (let i = 0; i < n; i++) v.ctx.fillRect(v.x(px(i)) - 1, v.y(py(i)) - 1, 2, 2);
  }

  // The highlighted points' paths: path(i) gives [x, y] pairs, the last one where the point is now.
  function drawPaths(v, count, path) {
    const ctx = v.ctx;
    ctx.lineWidth = 1;
    ctx.globalAlpha = 0.7;
    for (let i = 0; i < count; i++) {
      const pts = path(i);
      const color = PATH_COLORS[i % PATH_COLORS.length];
      ctx.strokeStyle = color;
      ctx.beginPath();
      pts.forEach(([x, y], j) => (j ? ctx.lineTo(v.x(x), v.y(y)) : ctx.moveTo(v.x(x), v.y(y))));
      ctx.stroke();
      const [hx, hy] = pts[pts.length - 1];
      ctx.fillStyle = color;
      ctx.beginPath();
      ctx.arc(v.x(hx), v.y(hy), 3, 0, 2 * Math.PI);
      ctx.fill();
    }
    ctx.globalAlpha = 1;
  }

  // Arrows of a score field (k-th frame of field, (A², 2)), each scaled by `scale` (a score of that norm spans
  // 0.9 of a grid cell; longer ones are capped there).
  function drawArrows(v, lab, field, k, scale, color) {
    const A = lab.arrows, e = lab.extent, cell = (2 * e) / (A - 1), ctx = v.ctx;
    ctx.strokeStyle = color;
    ctx.fillStyle = color;
    ctx.lineWidth = 1.2;
    for (let j = 0; j < A; j++) {
      for (let i = 0; i < A; i++) {
        const g = j * A + i, o = 2 * (k * A * A + g);
        const sx = field[o], sy = field[o + 1];
        const norm = Math.hypot(sx, sy);
        if (!(norm > 0)) continue;
        const length = Math.min(norm / scale, 1) * 0.9 * cell;
        const x0 = -e + i * cell, y0 = -e + j * cell;
        const x1 = x0 + (sx / norm) * length, y1 = y0 + (sy / norm) * length;
        const [ax, ay, bx, by] = [v.x(x0), v.y(y0), v.x(x1), v.y(y1)];
        ctx.beginPath();
        ctx.moveTo(ax, ay);
        ctx.lineTo(bx, by);
        ctx.stroke();
        const angle = Math.atan2(by - ay, bx - ax), head = Math.min(4, Math.hypot(bx - ax, by - ay) / 2);
        ctx.beginPath();
        ctx.moveTo(bx, by);
        ctx.lineTo(bx - head * Math.cos(angle - 0.5), by - head * Math.sin(angle - 0.5));
        ctx.lineTo(bx - head * Math.cos(angle + 0.5), by - head * Math.sin(angle + 0.5));
        ctx.fill();
      }
    }
  }

  // The norm that spans a full arrow at field frame k: the 90th percentile of the reference field's norms.
  function arrowScale(lab, field, k) {
    const A2 = lab.arrows * lab.arrows;
    const norms = [];
    for (let g = 0; g < A2; g++) norms.push(Math.hypot(field[2 * (k * A2 + g)], field[2 * (k * A2 + g) + 1]));
    norms.sort((p, q) => p - q);
    return norms[Math.floor(0.9 * (A2 - 1))] || 1;
  }

  // ---------------------------------------------------------------- the panels at t
  function drawForward(lab, t, k) {
    const v = view($('canvas[data-panel="forward"]'), lab);
    v.clear(lab.heat[k], 1);
    const a = lab.a[t], b = lab.b[t], x0 = lab.x0, eps = lab.eps;
    drawCloud(v, lab.points, (i) => a * x0[2 * i] + b * eps[2 * i], (i) => a * x0[2 * i + 1] + b * eps[2 * i + 1]);
    // each highlighted point's path x_s = √ᾱ_s·x₀ + √(1−ᾱ_s)·ε for s = 0 … t (in closed form, at ~60 values of s)
    const stride = Math.max(1, Math.round(lab.T / 60));
    const ss = [];
    for (let s = 0; s < t; s += stride) ss.push(s);
    ss.push(t);
    drawPaths(v, lab.highlighted, (i) => ss.map((s) => [
      lab.a[s] * x0[2 * i] + lab.b[s] * eps[2 * i], lab.a[s] * x0[2 * i + 1] + lab.b[s] * eps[2 * i + 1],
    ]));
  }

  function drawFields(lab, k) {
    const learnedView = view($('canvas[data-panel="learned"]'), lab);
    const exactView = view($('canvas[data-panel="exact"]'), lab);
    learnedView.clear(lab.heat[k], 0.5);
    exactView.clear(lab.heat[k], 0.5);
    const note = (v, lines) => {
      v.ctx.fillStyle = "#555";
      v.ctx.font = "13px sans-serif";
      lines.forEach((line, i) => v.ctx.fillText(line, 12, 20 + 18 * i));
    };
    if (lab.field_t[k] === 0) {
      [learnedView, exactView].forEach((v) => note(v, ["t = 0: no noise, no score."]));
      return;
    }
    const reference = lab.exact || lab.learned;
    const scale = reference ? arrowScale(lab, reference, k) : 1;  // one scale for both panels: comparable arrows
    if (lab.learned) drawArrows(learnedView, lab, lab.learned, k, scale, "#c92a2a");
    else note(learnedView, ["Train a model to see its score."]);
    if (lab.exact) drawArrows(exactView, lab, lab.exact, k, scale, "#2b8a3e");
    else note(exactView, ["Known in closed form for the Gaussian", "mixture (8 Gaussians on a ring) only."]);
  }

  // A run at t, over the forward process's q(x_t): a good model's cloud follows it.
  function drawRun(lab, run, t, k) {
    const canvas = $(`canvas[data-panel="${run.key}"]`);
    const v = view(canvas, lab);
    v.clear(lab.heat[k], 0.5);
    const r = S.nearest(run.t, t), n = lab.points, f = run.frames;
    drawCloud(v, n, (i) => f[2 * (r * n + i)], (i) => f[2 * (r * n + i) + 1]);
    drawPaths(v, lab.highlighted, (i) => {
      const pts = [];
      for (let j = 0; j <= r; j++) pts.push([f[2 * (j * n + i)], f[2 * (j * n + i) + 1]]);
      return pts;
    });
    const where = run.t[r] === 0 ? "the samples (t = 0)" : `x_t at its recorded step t = ${run.t[r]}`;
    $(`figcaption[data-caption="${run.key}"]`).innerHTML =
      `<b>${run.name}</b>: ${where}, from x_T = the same noise for all three; ${run.nfe} model evaluations in ` +
      `${run.wall_s.toFixed(2)} s. Shading: q(x_t).`;
    return run.t[r];
  }

  function show(t) {
    const lab = state.lab;
    if (!lab) return;
    t = Math.max(0, Math.min(lab.T, Math.round(t)));
    const k = S.nearest(lab.field_t, t);
    drawForward(lab, t, k);
    drawFields(lab, k);
    const runT = lab.runs.map((run) => drawRun(lab, run, t, k));
    for (const key of ["ddpm", "ddim", "ode"]) {
      if (!lab.runs.some((r) => r.key === key)) {
        view($(`canvas[data-panel="${key}"]`), lab).clear(null);
        $(`figcaption[data-caption="${key}"]`).textContent = "Train and sample to see this sampler's run.";
      }
    }
    const ft = lab.field_t[k];
    const density = lab.density.what === "exact"
      ? "the mixture's exact q(x_t)"
      : "q(x_t) of the data smoothed by N(0, 0.1²·I)";
    let text = `<b>t = ${t}</b> of ${lab.T}: ᾱ_t = ${S.fmt(lab.alphaBar[t], 4)}, √ᾱ_t = ${S.fmt(lab.a[t], 4)}, ` +
      `√(1−ᾱ_t) = ${S.fmt(lab.b[t], 4)}. Shading: ${density} at t = ${ft}, darker is denser (√ of density / max).`;
    let error = "";
    if (lab.fields && ft > 0) {
      const which = lab.exact ? "the exact" : "the learned";
      text += ` Arrows at t = ${ft}, one scale for both (a full cell: ${which} score's 90th-percentile norm).`;
      if (lab.fields.error && lab.fields.error[k] !== null) {
        error = String(lab.fields.error[k]);
        const relative = (100 * lab.fields.error[k]) / lab.fields.norm[k];
        text += ` <b>Mean ‖s_θ − ∇log q_t‖ = ${S.fmt(lab.fields.error[k], 3)}</b> over the ${lab.points} points ` +
          `noised to t (${relative.toFixed(1)} % of the exact score's mean norm ${S.fmt(lab.fields.norm[k], 3)}).`;
      }
    }
    $(".caption").innerHTML = text;
    element.dataset.source = lab.dataset;
    element.dataset.fieldT = String(ft);
    element.dataset.runT = runT.join(",");
    element.dataset.error = error;
    return t;
  }

  S.mount(element, props, watch, { direction: -1, load, show });
})();
