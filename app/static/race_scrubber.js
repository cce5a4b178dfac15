// Reverse tab, race view: two to four recorded runs scrubbed together by noise level. The slider's t gives a log
// SNR on the model's schedule; each run shows its recorded frame nearest that noise level (runs with different step
// counts and solvers align), with its model evaluations (NFE) so far. No request is sent.
// Runs as the gr.HTML's js_on_load (element, props, watch come from gradio), mounted by scrub.js's S.mount, which
// owns the version guard, the slider and failures; this file only paints.
//
// The payload (props.value, JSON, from app/scrub_payload.py::race_payload):
//   version; T; log_snr: float32 (T + 1), the schedule's log SNR by the paper's t (t = 0: +∞, the data)
//   what: what every run samples, in words ("class Sandal, w = 2"; "" for an unconditional model)
//   runs: [{name, num_evaluations, wall_s, frame_height, frame_width,
//           log_snr, t, nfe: per recorded frame (noise level of its x_t, its paper's t, evaluations so far),
//           atlas: {x_t, x0_hat}: base64 PNGs, frame k at rows k·frame_height …; result: base64 PNG of x₀}]
(() => {
  const S = window.DDPMScrub;
  const $ = (selector) => element.querySelector(selector);
  const state = { race: null };
  const escape = (text) => Object.assign(document.createElement("span"), { textContent: text }).innerHTML;

  function figure(caption) {
    const fig = document.createElement("figure");
    fig.innerHTML = `<canvas width="8" height="8"></canvas><figcaption>${caption}</figcaption>`;
    return fig;
  }

  async function load(p, isCurrent) {
    const runs = await Promise.all(p.runs.map(async (r) => ({
      ...r,
      atlases: await Promise.all([S.decodeImage(r.atlas.x_t), S.decodeImage(r.atlas.x0_hat)]),
      resultImage: await S.decodeImage(r.result),
    })));
    if (!isCurrent()) return;
    const rows = $(".runs");
    rows.innerHTML = "";
    for (const r of runs) {
      const row = document.createElement("div");
      row.className = "race-row";
      const title = document.createElement("div");
      title.className = "race-title";
      row.append(title, figure("x_t"), figure("x̂₀"));
      rows.append(row);
      r.row = row;
    }
    state.race = { ...p, runs, logSnr: S.float32(p.log_snr) };
  }

  function draw(canvas, r, atlas, row) {
    S.drawFrame(canvas, atlas, row, r.frame_height, r.frame_width);
  }

  function show(t) {
    const race = state.race;
    if (!race) return;
    t = Math.max(0, Math.min(race.T, Math.round(t)));
    const target = race.logSnr[t];  // +∞ at t = 0: every run's result
    for (const r of race.runs) {
      const canvases = r.row.querySelectorAll("canvas");
      let text;
      if (t === 0) {
        draw(canvases[0], r, r.resultImage, 0);
        draw(canvases[1], r, r.resultImage, 0);
        text = `result after ${r.num_evaluations} NFE`;
      } else {
        const k = S.nearest(r.log_snr, target);
        canvases.forEach((canvas, i) => draw(canvas, r, r.atlases[i], k));
        text = `NFE ${r.nfe[k]} of ${r.num_evaluations} · its t = ${r.t[k]} · log SNR ${r.log_snr[k].toFixed(2)}`;
      }
      r.row.querySelector(".race-title").innerHTML =
        `<b>${r.name}</b><br>${text}<br><span class="muted">${r.wall_s.toFixed(1)} s in all</span>`;
    }
    const what = race.what ? ` Sampling ${escape(race.what)}.` : "";
    $(".caption").innerHTML = (t === 0
      ? "<b>t = 0</b>: every run's result."
      : `<b>t = ${t}</b>: log SNR = ${race.logSnr[t].toFixed(2)}; each run at its recorded step nearest this noise level.`)
      + what;
    return t;
  }

  S.mount(element, props, watch, { direction: -1, load, show });
})();
