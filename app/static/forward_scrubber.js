// Forward tab: x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε computed here, in the page, at every slider move: no request is sent.
// Runs as the gr.HTML's js_on_load (element, props, watch come from gradio); helpers in scrub.js.
//
// The payload (props.value, JSON, sent once per setup by app/scrub_payload.py::forward_payload):
//   version  increasing per setup; an older payload never replaces a newer one
//   T, height, width, channels
//   x0       uint8 (H, W, C): x₀ = byte/127.5 − 1, exactly the model's input
//   eps      float16 (H, W, C): ε ~ N(0, I)
//   sqrt_alpha_bar, sqrt_one_minus_alpha_bar, beta, alpha_bar, log_snr: float32 (T + 1), indexed by the paper's t
//     (t = 0 is the data: √ᾱ = 1, and β and log SNR are not finite there)
(() => {
  const S = window.DDPMScrub;
  const sliderId = props.slider;
  const $ = (selector) => element.querySelector(selector);
  const state = { version: -1, data: null, plot: null };

  function load(json) {
    if (!json) return;
    const p = JSON.parse(json);
    if (p.version <= state.version) return;  // a late, older setup
    const n = p.height * p.width * p.channels;
    const x0 = S.bytes(p.x0);
    const data = {
      T: p.T, h: p.height, w: p.width, c: p.channels,
      x0: Float32Array.from(x0, (b) => b / 127.5 - 1),
      eps: S.float16(p.eps),
      a: S.float32(p.sqrt_alpha_bar), b: S.float32(p.sqrt_one_minus_alpha_bar),
      beta: S.float32(p.beta), alphaBar: S.float32(p.alpha_bar), logSnr: S.float32(p.log_snr),
      xt: new Float32Array(n),
    };
    state.version = p.version;
    state.data = data;
    S.paint($('canvas[data-panel="eps"]'), data.h, data.w, data.c, (k) => S.toByte(data.eps[k], 3));
    state.plot = S.curves($("canvas.curves"), [
      { label: "β_t", values: data.beta, log: true },
      { label: "ᾱ_t", values: data.alphaBar, log: false },
      { label: "log SNR", values: data.logSnr, log: false },
    ], data.T);
    show(S.readT(sliderId));
  }

  function show(t) {
    const d = state.data;
    if (!d) return;
    t = Math.max(0, Math.min(d.T, Math.round(t)));
    const a = d.a[t], b = d.b[t];
    // x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε, and its two parts
    for (let k = 0; k < d.xt.length; k++) d.xt[k] = a * d.x0[k] + b * d.eps[k];
    S.paint($('canvas[data-panel="x_t"]'), d.h, d.w, d.c, (k) => S.toByte(d.xt[k], 1));
    S.paint($('canvas[data-panel="signal"]'), d.h, d.w, d.c, (k) => S.toByte(a * d.x0[k], 1));
    S.paint($('canvas[data-panel="noise"]'), d.h, d.w, d.c, (k) => S.toByte(b * d.eps[k], 3));
    state.plot.at(t);
    const ab = d.alphaBar[t], snr = t === 0 ? Infinity : Math.exp(d.logSnr[t]);
    const rows = [
      ["t", `${t} / ${d.T}`],
      ["β_t", S.fmt(d.beta[t], 4)],
      ["ᾱ_t", S.fmt(ab, 4)],
      ["√ᾱ_t (signal)", a.toFixed(4)],
      ["√(1−ᾱ_t) (noise)", b.toFixed(4)],
      ["SNR = ᾱ_t/(1−ᾱ_t)", S.fmt(snr, 4)],
      ["log SNR", t === 0 ? "∞" : d.logSnr[t].toFixed(3)],
    ];
    $("table.values").innerHTML =
      "<tr><th>quantity</th><th>value</th></tr>" + rows.map(([k, v]) => `<tr><td>${k}</td><td>${v}</td></tr>`).join("");
    element.dataset.t = String(t);
    element.dataset.version = String(state.version);
    element.dataset.paints = String(Number(element.dataset.paints || 0) + 1);
  }

  S.bindSlider(sliderId, show);
  const play = S.player(sliderId, +1, () => Number($("select.speed").value));
  $("button.play").addEventListener("click", () => play.play());
  $("button.pause").addEventListener("click", () => play.pause());
  watch("value", () => load(props.value));
  load(props.value);
})();
