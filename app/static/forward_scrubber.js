// Forward tab: x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε computed here, in the page, at every slider move: no request is sent.
// Runs as the gr.HTML's js_on_load (element, props, watch come from gradio), mounted by scrub.js's S.mount, which
// owns the version guard, the slider and failures; this file only paints.
//
// The payload (props.value, JSON, sent once per setup by app/scrub_payload.py::forward_payload):
//   version  increasing per setup; an older payload never replaces a newer one
//   T, height, width, channels
//   x0       uint8 (H, W, C): x₀ = byte/127.5 − 1, exactly the model's input
//   eps      float16 (H, W, C): ε ~ N(0, I)
//   sqrt_alpha_bar, sqrt_one_minus_alpha_bar, beta, alpha_bar, log_snr: float32 (T + 1), indexed by the paper's t
//     (t = 0 is the data: √ᾱ = 1, and β and log SNR are not finite there)
//   spectrum: {freqs, x0, eps}: radially averaged power spectra of x₀ and ε (pipelines/spectral.py), by frequency
//     in cycles per pixel; at t the signal's is ᾱ_t·x0 and the noise's (1 − ᾱ_t)·eps
(() => {
  const S = window.DDPMScrub;
  const $ = (selector) => element.querySelector(selector);
  const state = { data: null, plot: null };

  function load(p) {
    const x0 = S.bytes(p.x0);
    const data = {
      T: p.T, h: p.height, w: p.width, c: p.channels,
      x0: Float32Array.from(x0, (b) => b / 127.5 - 1),
      eps: S.float16(p.eps),
      a: S.float32(p.sqrt_alpha_bar), b: S.float32(p.sqrt_one_minus_alpha_bar),
      beta: S.float32(p.beta), alphaBar: S.float32(p.alpha_bar), logSnr: S.float32(p.log_snr),
      spectrum: p.spectrum,
    };
    data.frames = ["x_t", "signal", "noise"].map((name) => {
      const canvas = $(`canvas[data-panel="${name}"]`);
      canvas.width = p.width;
      canvas.height = p.height;
      const ctx = canvas.getContext("2d");
      const image = ctx.createImageData(p.width, p.height);
      image.data.fill(255);  // opaque; the loop writes R, G, B
      return { ctx, image };
    });
    state.data = data;
    S.paint($('canvas[data-panel="eps"]'), data.h, data.w, data.c, (k) => S.toByte(data.eps[k], 3));
    state.plot = S.curves($("canvas.curves"), [
      { label: "β_t", values: data.beta, log: true },
      { label: "ᾱ_t", values: data.alphaBar, log: false },
      { label: "ln SNR", note: "(natural log)", values: data.logSnr, log: false },
    ], data.T);
  }

  // The three frames of t, written straight into RGBA buffers. A Uint8ClampedArray rounds half to even and clips
  // to 0 … 255 on assignment: exactly the server's to_uint8 (pipelines/trajectory.py), with no per-pixel call.
  function paintFrames(d, a, b) {
    const n = d.h * d.w, c = d.c;
    const [xt, signal, noise] = d.frames.map((f) => f.image.data);
    for (let p = 0, k = 0; p < n; p++) {
      for (let ch = 0; ch < 3; ch++) {
        const i = k + (c === 3 ? ch : 0);
        const x0 = d.x0[i], eps = d.eps[i];
        xt[4 * p + ch] = (a * x0 + b * eps + 1) * 127.5;  // x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε, [−1, 1] -> bytes
        signal[4 * p + ch] = (a * x0 + 1) * 127.5;  // √ᾱ_t·x₀
        noise[4 * p + ch] = ((b * eps) / 3 + 1) * 127.5;  // √(1−ᾱ_t)·ε, ±3σ -> bytes
      }
      k += c;
    }
    d.frames.forEach((f) => f.ctx.putImageData(f.image, 0, 0));
  }

  function show(t) {
    const d = state.data;
    if (!d) return;
    t = Math.max(0, Math.min(d.T, Math.round(t)));
    const a = d.a[t], b = d.b[t];
    paintFrames(d, a, b);
    state.plot.at(t);
    const ab = d.alphaBar[t], snr = t === 0 ? Infinity : Math.exp(d.logSnr[t]);
    const rows = [
      ["t", `${t} / ${d.T}`],
      ["β_t", S.fmt(d.beta[t], 4)],
      ["ᾱ_t", S.fmt(ab, 4)],
      ["√ᾱ_t (signal)", a.toFixed(4)],
      ["√(1−ᾱ_t) (noise)", b.toFixed(4)],
      ["SNR = ᾱ_t/(1−ᾱ_t)", S.fmt(snr, 4)],
      ["ln SNR (natural log)", t === 0 ? "∞" : d.logSnr[t].toFixed(3)],
    ];
    $("table.values").innerHTML =
      "<tr><th>quantity</th><th>value</th></tr>" + rows.map(([k, v]) => `<tr><td>${k}</td><td>${v}</td></tr>`).join("");
    drawSpectrum(d.spectrum, ab);
    return t;
  }

  // The spectral view: log-log power against frequency of the signal √ᾱ_t·x₀ and of the noise √(1−ᾱ_t)·ε, with
  // the lowest frequency where the noise reaches the signal marked (the rule of pipelines/spectral.py).
  function drawSpectrum(sp, ab) {
    const signal = sp.x0.map((p) => ab * p), noise = sp.eps.map((p) => (1 - ab) * p);
    const all = [...sp.x0, ...sp.eps].filter((p) => p > 0);
    const range = [Math.log10(Math.min(...all)) - 2, Math.log10(Math.max(...all)) + 0.3];
    const k = noise.findIndex((p, i) => p >= signal[i]);  // -1: the signal is above the noise everywhere
    S.spectrumPlot($("canvas.spectrum"), sp.freqs, [
      { values: signal, color: "#3b5bdb", label: "signal √ᾱ_t·x₀" },
      { values: noise, color: "#e8590c", label: "noise √(1−ᾱ_t)·ε" },
    ], range, k);
    let text;
    if (k < 0) {
      text = "The signal is above the noise at every frequency: the whole image survives.";
    } else if (k === 0) {
      text = "The noise is above the signal at every frequency: even the coarsest shapes are drowned.";
    } else {
      const f = sp.freqs[k];
      text = `Below ${f.toPrecision(2)} cycles per pixel (details larger than ${(1 / f).toPrecision(2)} px) the ` +
        "image still stands out of the noise; above it (shaded) noise wins. As t grows the line moves left: " +
        "noising erases fine detail first, so denoising builds coarse shapes first.";
    }
    element.dataset.crossing = k < 0 ? "" : String(sp.freqs[k]);
    $(".spectrum-caption").textContent = text;
  }

  S.mount(element, props, watch, { direction: +1, load, show });
})();
