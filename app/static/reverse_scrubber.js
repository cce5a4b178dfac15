// Reverse tab: a recorded run scrubbed in the page. The frames arrive once per run, as one PNG atlas per panel;
// a slider move copies one frame of each onto its canvas: no request is sent.
// Runs as the gr.HTML's js_on_load (element, props, watch come from gradio), mounted by scrub.js's S.mount, which
// owns the version guard, the slider and failures; this file only paints.
//
// The payload (props.value, JSON, from app/scrub_payload.py::reverse_payload):
//   version; T; frame_height, frame_width (one grid of the batch); num_steps (N, the steps asked for); evaluations
//   (the model evaluations of the run: N, or Heun's 2N − 1); complete (false while the run streams, or after Stop:
//   the frames so far, and no result at t = 0); stopped (the run was stopped by its user: incomplete for good)
//   t, t_prev, step, evaluation: per recorded frame, the paper's t of its x_t, the t′ it steps to (Heun's corrector:
//   its own t), its step (1 … N) and its model evaluation (1-based). (The bundled default run predates the last two
//   keys: its evaluations are its steps.)
//   atlas: {x_t, x0_hat, eps_hat}: base64 PNGs, frame k at rows k·frame_height …; result: base64 PNG of x₀;
//   no_noise: the ε̂ panel at t = 0 (mid grey)
//   sqrt_alpha_bar, sqrt_one_minus_alpha_bar, beta, alpha_bar, log_snr: float32 (T + 1), by the paper's t
//   variance (a model with a learned Σ_θ, else null): {mean: per frame, the mean of v (0 at β̃_t, 1 at β_t),
//     posterior_variance: float32 (T + 1), β̃ by the paper's t}; atlas.v: v per pixel (0 … 255 for 0 … 1)
//   spectrum: {freqs, x0_hat: per frame, result, data (the training data's mean, or null)}: radially averaged power
//     spectra (pipelines/spectral.py), by frequency in cycles per pixel
//   classes (Fashion-MNIST models, else null): {names, probs: (frames + 1, B, classes), the classifier's
//     probabilities for x̂₀ at each frame and for the result; final: each image's class; decided_t: the paper's t
//     from which that class stays on top (pipelines/class_decision.py)}
(() => {
  const S = window.DDPMScrub;
  const $ = (selector) => element.querySelector(selector);
  const state = { run: null, plot: null, pick: null };  // pick: the frame the evaluation buttons chose at its t

  async function load(p, isCurrent) {
    const [xt, x0, eps, result, noNoise, v] = await Promise.all(
      [p.atlas.x_t, p.atlas.x0_hat, p.atlas.eps_hat, p.result, p.no_noise, p.atlas.v].map(
        (png) => (png ? S.decodeImage(png) : null),
      ),
    );
    if (!isCurrent()) return;
    const beta = S.float32(p.beta), alphaBar = S.float32(p.alpha_bar), logSnr = S.float32(p.log_snr);
    state.run = {
      evaluation: p.step, evaluations: p.num_steps, ...p, atlases: [xt, x0, eps], result, noNoise, alphaBar, logSnr,
      v, beta,
    };
    state.pick = null;
    // the buttons step through evaluations that share a t (Heun's corrector): shown only where there are such
    $(".evaluations").hidden = state.run.evaluations === state.run.num_steps;
    const series = [{ label: "β_t", values: beta, log: true }];
    if (p.variance) {
      // Σ_θ's mean over the pixels at each recorded t (held to the next one), between β̃_t and β_t
      const tilde = S.float32(p.variance.posterior_variance);
      const sigma = new Float32Array(p.T + 1).fill(NaN);
      p.t.forEach((t, k) => {
        if (p.t_prev[k] === 0) return;  // the last step adds no noise
        const v = p.variance.mean[k];
        for (let s = p.t_prev[k] + 1; s <= t; s++) sigma[s] = Math.exp(v * Math.log(beta[s]) + (1 - v) * Math.log(tilde[s]));
      });
      series.push({ label: "β̃_t", values: tilde, log: true }, { label: "Σ_θ (mean v)", values: sigma, log: true });
      state.run.tilde = tilde;
    }
    series.push({ label: "ᾱ_t", values: alphaBar, log: false }, {
      label: "ln SNR", note: "(natural log)", values: logSnr, log: false,
    });
    state.plot = S.curves($("canvas.curves"), series, p.T);
    $(".variance-view").hidden = !p.variance;
    const view = $(".classes-view");
    view.hidden = !p.classes;
    if (p.classes) {
      const select = $("select.image");
      const chosen = Math.min(Number(select.value || 0), p.classes.final.length - 1);
      select.innerHTML = p.classes.final.map((_, b) => `<option value="${b}">${b + 1}</option>`).join("");
      select.value = String(chosen);
    }
  }

  const COLORS = ["#1c7ed6", "#e8590c", "#2f9e44", "#c2255c", "#7048e8", "#f08c00", "#0c8599", "#862e9c", "#5c940d",
    "#495057"];

  // The classifier's probabilities for one image's x̂₀ against t (one line per class, named in a legend beside the
  // axes), the cursor at t, and the t from which the final class stays on top marked. "image k" is the k-th cell of
  // the run's grid, row by row (rendering.uint8_grid: ⌈√B⌉ columns); its select says which row and column.
  function drawClasses(r, t) {
    const c = r.classes;
    if (!c) return;
    const select = $("select.image");
    const b = Number(select.value || 0);
    const columns = Math.ceil(Math.sqrt(c.final.length));
    const cell = (k) => `${k + 1} (row ${Math.floor(k / columns) + 1}, column ${(k % columns) + 1})`;
    Array.from(select.options).forEach((o, k) => { if (o.text !== cell(k)) o.text = cell(k); });
    const canvas = $("canvas.classes");
    S.fitWidth(canvas);
    const ctx = canvas.getContext("2d");
    const W = canvas.width, H = canvas.height, left = 36, right = 96, top = 10, bottom = 30;
    const ts = [...r.t, 0];  // the frames' t, then the result at t = 0
    const x = (v) => left + ((W - left - right) * v) / r.T, y = (p) => top + (H - top - bottom) * (1 - p);
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, W, H);
    ctx.strokeStyle = "#ccc";
    ctx.strokeRect(left, top, W - left - right, H - top - bottom);
    c.names.forEach((name, k) => {
      ctx.strokeStyle = COLORS[k % COLORS.length];
      ctx.lineWidth = k === c.final[b] ? 2.6 : 1.2;
      ctx.beginPath();
      ts.forEach((v, i) => (i ? ctx.lineTo(x(v), y(c.probs[i][b][k])) : ctx.moveTo(x(v), y(c.probs[i][b][k]))));
      ctx.stroke();
    });
    ctx.setLineDash([4, 3]);
    ctx.strokeStyle = "#333";
    ctx.beginPath();
    ctx.moveTo(x(c.decided_t[b]), top);
    ctx.lineTo(x(c.decided_t[b]), H - bottom);
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.strokeStyle = "#d00";
    ctx.beginPath();
    ctx.moveTo(x(t), top);
    ctx.lineTo(x(t), H - bottom);
    ctx.stroke();
    ctx.font = "11px sans-serif";
    ctx.fillStyle = "#333";
    ctx.fillText("1", 4, top + 8);
    ctx.fillText("0", 4, H - bottom);
    ctx.fillText("p", 4, (H - bottom) / 2);
    ctx.textAlign = "center";
    [0, Math.round(r.T / 2), r.T].forEach((v) => ctx.fillText(String(v), Math.min(x(v), W - 14), H - 16));
    ctx.fillText("t", (W - right + left) / 2, H - 3);
    ctx.textAlign = "left";
    const row = Math.min(16, (H - top - bottom) / c.names.length);  // the legend: a swatch and each class's name
    c.names.forEach((name, k) => {
      const ly = top + row * k + row / 2;
      ctx.fillStyle = COLORS[k % COLORS.length];
      ctx.fillRect(W - right + 8, ly - 2, 12, k === c.final[b] ? 4 : 2);
      ctx.font = k === c.final[b] ? "bold 11px sans-serif" : "11px sans-serif";
      ctx.fillText(name, W - right + 24, ly + 4);
    });
    ctx.font = "11px sans-serif";
    ctx.fillStyle = "#333";
    const name = c.names[c.final[b]];
    const p = c.probs[c.probs.length - 1][b][c.final[b]];
    $(".classes-caption").innerHTML =
      `image ${cell(b)} of the grid is classified as ` +
      `<b style="color:${COLORS[c.final[b] % COLORS.length]}">${name}</b> (p = ${p.toFixed(2)} in the end), ` +
      `on top for good from <b>t = ${c.decided_t[b]}</b> (dashed); red: the slider's t. Each line is the ` +
      "classifier's probability for x̂₀ at that step.";
    element.dataset.decidedT = String(c.decided_t[b]);
  }

  function draw(canvas, atlas, row) {
    S.drawFrame(canvas, atlas, row, state.run.frame_height, state.run.frame_width);
  }

  function show(t) {
    const r = state.run;
    if (!r) return;
    t = Math.max(0, Math.min(r.T, Math.round(t)));
    // the recorded frame nearest t; t = 0 is the result
    let k = S.nearest(r.complete ? [...r.t, 0] : r.t, t);
    // two recorded evaluations at one t (Heun's corrector, then the next step's Euler evaluation): the one the
    // evaluation buttons chose, else the first
    if (state.pick !== null && state.pick < r.t.length && k < r.t.length && r.t[state.pick] === r.t[k]) k = state.pick;
    state.shownFrame = k;
    element.dataset.frame = String(k);  // what the browser tests read: the frame shown (its t: dataset.t)
    const canvases = ["x_t", "x0_hat", "eps_hat"].map((name) => $(`canvas[data-panel="${name}"]`));
    let shown, caption;
    if (k === r.t.length) {
      shown = 0;
      draw(canvases[0], r.result, 0);
      draw(canvases[1], r.result, 0);
      draw(canvases[2], r.noNoise, 0);  // no noise left to predict at t = 0
      if (r.v) draw($('canvas[data-panel="v"]'), r.noNoise, 0);  // no step, no Σ_θ
      caption = `<b>t = 0</b>: the result x₀, after the last step t = ${r.t[r.t.length - 1]} → 0; ` +
        "there is no noise left to predict, so ε̂ is blank (mid grey).";
    } else {
      shown = r.t[k];
      canvases.forEach((canvas, i) => draw(canvas, r.atlases[i], k));
      caption =
        `<b>${stepLabel(r, k)}.</b> ` +
        `ᾱ_t = ${S.fmt(r.alphaBar[shown], 4)}, SNR = ${S.fmt(Math.exp(r.logSnr[shown]), 4)}, ` +
        `ln SNR = ${r.logSnr[shown].toFixed(3)}`;
      if (r.evaluations !== r.num_steps) {
        caption += ` (model evaluation ${r.evaluation[k]} of ${r.evaluations}` +
          (isCorrector(r, k)
            ? ": the model again at the step's end, on the Euler step's x_t; the step then averages the two slopes)"
            : r.step[k] < r.num_steps ? ": an Euler step, which the corrector at its end then refines)" : ")");
      }
      if (r.v) {
        draw($('canvas[data-panel="v"]'), r.v, k);
        caption += r.t_prev[k] > 0
          ? `; learned Σ_θ: mean v = ${r.variance.mean[k].toFixed(3)} between β̃_t = ${S.fmt(r.tilde[shown], 3)}` +
            ` and β_t = ${S.fmt(r.beta[shown], 3)}`
          : "; the last step adds no noise (no Σ_θ)";
      }
    }
    if (shown !== t) caption += ` (the recorded step nearest the slider's t = ${t})`;
    if (!r.complete) {
      caption += r.stopped
        ? ". <i>The run was stopped after this step: there is no result x₀.</i>"
        : ". <i>The run is still going: these are its steps so far (no result x₀ yet).</i>";
    }
    $(".caption").innerHTML = caption;
    state.plot.at(shown);
    drawSpectrum(r.spectrum, k === r.t.length ? r.spectrum.result : r.spectrum.x0_hat[k]);
    drawClasses(r, shown);
    return shown;
  }

  // x̂₀'s power spectrum at the shown step against the data's mean: low frequencies reach the data's level first.
  function drawSpectrum(sp, x0hat) {
    if (!sp) return;
    const series = [{ values: x0hat, color: "#3b5bdb", label: "x̂₀ at this step" }];
    if (sp.data) series.unshift({ values: sp.data, color: "#868e96", label: "the training data (mean)", dash: [5, 3] });
    const all = [...sp.result, ...(sp.data || []), ...sp.x0_hat.flat()].filter((p) => p > 0);
    const range = [Math.log10(Math.min(...all)) - 0.3, Math.log10(Math.max(...all)) + 0.3];
    S.spectrumPlot($("canvas.spectrum"), sp.freqs, series, range, -1);
    $(".spectrum-caption").textContent = sp.data
      ? "Early in the run x̂₀ is a blur: it has the data's power at low frequencies (coarse shapes) and far less at " +
        "high ones. Step by step the high frequencies fill in: the model decides the coarse layout first, detail last."
      : "x̂₀'s power spectrum at this step: low frequencies (coarse shapes) settle first, high ones (detail) last.";
  }

  // "Step 2 of 10: t = 993 → 975", or Heun's second evaluation of a step, "Step 1 of 10, Heun's corrector at
  // t = 993" (app/reverse_session.py::step_label)
  function isCorrector(r, k) {
    return r.t_prev[k] === r.t[k] && r.t[k] > 0;
  }

  function stepLabel(r, k) {
    if (isCorrector(r, k)) return `Step ${r.step[k]} of ${r.num_steps}, Heun's corrector at t = ${r.t[k]}`;
    return `Step ${r.step[k]} of ${r.num_steps}: t = ${r.t[k]} → ${r.t_prev[k]}`;
  }

  const view = S.mount(element, props, watch, { direction: -1, load, show });
  $("select.image").addEventListener("change", () => view.refresh());

  // The evaluation buttons: the recorded frame before or after the one shown (then the result at t = 0), its t on
  // the slider; frames that share a t are told apart by the pick.
  const sliderId = element.querySelector(".scrubber").dataset.slider;
  function stepBy(delta) {
    const r = state.run;
    if (!r || state.shownFrame === undefined) return;
    const last = r.complete ? r.t.length : r.t.length - 1;
    const k = Math.max(0, Math.min(last, state.shownFrame + delta));
    state.pick = k < r.t.length ? k : null;
    S.setT(sliderId, k < r.t.length ? r.t[k] : 0);
    view.refresh();
  }
  $(".evaluations .previous").addEventListener("click", () => stepBy(-1));
  $(".evaluations .next").addEventListener("click", () => stepBy(1));
})();
