// DDPM Explorer's scrubbers, shared part: the mount every widget goes through (the version guard, the slider, the
// controls, one poller for the page, failures written into the caption), decoding payloads, painting frames, the
// curves and spectrum plots. Loaded once into the page's <head> (launch(head=...), app/tabs/scrubbers.py::HEAD);
// each widget (forward_, reverse_, race_ and lab_scrubber.js) runs as its gr.HTML js_on_load and only says what it
// paints. No dependencies, no build step.
window.DDPMScrub = window.DDPMScrub || (() => {
  // ---------------------------------------------------------------- payload arrays
  // The server sends arrays as base64 of little-endian bytes, with their dtype stated in the payload.

  function bytes(b64) {
    const s = atob(b64);
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  }

  function float32(b64) {
    const b = bytes(b64);
    return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
  }

  // IEEE half floats -> Float32Array (by hand: Float16Array is not in every browser yet)
  function float16(b64) {
    const b = bytes(b64);
    const h = new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2);
    const out = new Float32Array(h.length);
    for (let i = 0; i < h.length; i++) {
      const s = h[i] & 0x8000 ? -1 : 1;
      const e = (h[i] >> 10) & 0x1f;
      const m = h[i] & 0x3ff;
      out[i] = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
    }
    return out;
  }

  // ---------------------------------------------------------------- pixels
  // A value in [−range, range] -> a byte, exactly as the server's to_uint8 (pipelines/trajectory.py): images use
  // range 1 ([−1, 1] -> 0 … 255), noise range 3 (±3σ). A Uint8ClampedArray rounds half to even, as torch does,
  // and clips.
  const clamped = new Uint8ClampedArray(1);
  function toByte(x, range) {
    clamped[0] = (x / range + 1) * 127.5;
    return clamped[0];
  }

  // Paint an (H, W, C) frame, C = 1 or 3, whose k-th value is byteAt(k), on a canvas of H × W pixels (CSS scales it
  // up without smoothing).
  function paint(canvas, height, width, channels, byteAt) {
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    const ctx = canvas.getContext("2d");
    const image = ctx.createImageData(width, height);
    const rgba = image.data;
    for (let p = 0, k = 0; p < width * height; p++) {
      if (channels === 1) {
        const v = byteAt(k++);
        rgba[4 * p] = rgba[4 * p + 1] = rgba[4 * p + 2] = v;
      } else {
        rgba[4 * p] = byteAt(k++);
        rgba[4 * p + 1] = byteAt(k++);
        rgba[4 * p + 2] = byteAt(k++);
      }
      rgba[4 * p + 3] = 255;
    }
    ctx.putImageData(image, 0, 0);
  }

  // ---------------------------------------------------------------- plot widths
  // A plot is drawn at the width it is shown at: its natural width (its canvas's width in the HTML) or, in a
  // narrower box (a phone), the box's, so the whole plot is on screen with its 11 px text at 11 px. (Drawn at its
  // natural width and scrolled sideways in its box, a phone showed the curves to t ≈ 600 and no class names.)
  // Returns whether the width changed: a plot drawn once, as the curves' background, is drawn again.
  function fitWidth(canvas, minimum = 260) {
    if (!canvas.dataset.natural) canvas.dataset.natural = String(canvas.width);
    const natural = Number(canvas.dataset.natural), box = canvas.parentElement.clientWidth;
    if (!box) return false;  // its tab is hidden: drawn when it is shown (mount's resize observer)
    const width = Math.max(Math.min(natural, Math.floor(box)), Math.min(minimum, natural));
    if (width === canvas.width) return false;
    canvas.width = width;
    return true;
  }

  // ---------------------------------------------------------------- the curves
  // Stacked panels over t = 0 … T, drawn once into an offscreen canvas; each move redraws only the cursor.
  // series: [{label, values: Float32Array(T + 1), log: bool, note}]; non-finite values are left out. Each panel's
  // name (and under it its note, else "(log axis)" for a log-scaled one) sits in the left margin, which is as wide as the longest name,
  // so no label is drawn over a curve.
  function curves(canvas, series, T) {
    fitWidth(canvas);
    let plot = curvesBackground(canvas, series, T);
    return {
      at(t) {
        if (fitWidth(canvas)) plot = curvesBackground(canvas, series, T);
        const c = canvas.getContext("2d");
        c.drawImage(plot.background, 0, 0);
        c.fillStyle = "rgb(220, 40, 40)";
        const col = Math.round(plot.x(t));
        plot.rows.forEach(([a, b]) => c.fillRect(col, a, 2, b - a));
      },
    };
  }

  // The curves' panels, names and ticks at the canvas's present size: {background, x (t -> column), rows}.
  function curvesBackground(canvas, series, T) {
    const W = canvas.width, H = canvas.height;
    const ctx0 = canvas.getContext("2d");
    ctx0.font = "11px sans-serif";
    const names = series.map((s) => [s.label, ...(s.note ? [s.note] : s.log ? ["(log axis)"] : [])]);
    const widest = Math.max(54, ...names.flat().map((n) => ctx0.measureText(n).width));
    const left = Math.min(Math.round(widest) + 10, Math.round(W / 3)), right = 16, top = 8, bottom = 28, gap = 10;
    const ph = (H - top - bottom - gap * (series.length - 1)) / series.length;
    const x = (t) => left + ((W - left - right) * t) / Math.max(T, 1);
    const background = whiteCanvas(W, H), ctx = background.getContext("2d");
    ctx.font = "11px sans-serif";
    const rows = [];
    series.forEach((s, i) => {
      const y0 = top + i * (ph + gap);
      rows.push([y0, y0 + ph]);
      const f = (v) => (s.log ? Math.log10(v) : v);
      const finite = Array.from(s.values).filter((v) => Number.isFinite(v) && (!s.log || v > 0)).map(f);
      let lo = Math.min(...finite), hi = Math.max(...finite);
      if (hi - lo < 1e-12) { lo -= 0.5; hi += 0.5; }
      const y = (v) => y0 + ph - ((f(v) - lo) / (hi - lo)) * ph;
      ctx.strokeStyle = "#ccc";
      ctx.strokeRect(left, y0, W - left - right, ph);
      ctx.strokeStyle = "#3b5bdb";
      ctx.lineWidth = 1.6;
      ctx.beginPath();
      let drawing = false;
      s.values.forEach((v, t) => {
        if (!Number.isFinite(v) || (s.log && v <= 0)) { drawing = false; return; }
        drawing ? ctx.lineTo(x(t), y(v)) : ctx.moveTo(x(t), y(v));
        drawing = true;
      });
      ctx.stroke();
      ctx.fillStyle = "#333";
      const tick = (v) => {
        if (s.log) return (10 ** v).toExponential(1);
        if (Math.abs(v) >= 100) return v.toFixed(0);
        return v !== 0 && Math.abs(v) < 1e-3 ? v.toExponential(1) : v.toPrecision(3);
      };
      ctx.textAlign = "right";  // the ticks against the panel's edge, the name at the margin's left
      ctx.fillText(tick(hi), left - 3, y0 + 10);
      ctx.fillText(tick(lo), left - 3, y0 + ph - 2);
      ctx.textAlign = "left";
      const middle = y0 + ph / 2 + 4 - 6 * (names[i].length - 1);
      names[i].forEach((n, j) => {
        ctx.fillStyle = j ? "#666" : "#333";
        ctx.fillText(n, 2, middle + 12 * j);
      });
    });
    ctx.fillStyle = "#333";
    ctx.textAlign = "center";
    [0, Math.round(T / 2), T].forEach((t) => ctx.fillText(String(t), Math.min(x(t), W - 16), H - 12));
    ctx.fillText("t", (W + left) / 2, H - 1);
    canvas.dataset.labels = JSON.stringify(names.map((n) => n.join(" ")));  // what the tests read back
    return { background, x, rows };
  }

  // ---------------------------------------------------------------- the slider
  // gradio's own slider (a range input and a number box inside #sliderId) stays the one t of the tab: the server
  // views (GIF, Markov chain, …) read it. Its moves reach us here, in the page, and no request is sent.
  function range(sliderId) {
    return document.querySelector(`#${sliderId} input[type="range"]`);
  }

  function readT(sliderId) {
    const r = range(sliderId);
    return r ? Number(r.value) : 0;
  }

  function setT(sliderId, t) {
    const r = range(sliderId);
    if (!r) return;
    r.value = String(t);
    r.dispatchEvent(new Event("input", { bubbles: true }));  // gradio's value follows, and so does onT below
  }

  // The sliders the page's widgets follow: slider id -> {seen: its range's value at the last poll, listeners}.
  const followed = new Map();

  // The id of the followed slider an event's target is in (or null).
  function followedBy(target) {
    if (!target.closest) return null;
    for (const sliderId of followed.keys()) if (target.closest(`#${sliderId}`)) return sliderId;
    return null;
  }

  // gradio also sets a slider itself (a run ends at t = 0, the number box commits on Enter) without an event: one
  // poller for the whole page reads each followed range's value once per animation frame and catches that.
  function poll() {
    for (const [sliderId, f] of followed) {
      const r = range(sliderId);
      if (r && r.value !== f.seen) {
        f.seen = r.value;
        f.listeners.forEach((onT) => onT(Number(r.value)));
      }
    }
    requestAnimationFrame(poll);
  }

  function listenOnce() {
    // delegated from the document: gradio may re-create the inputs (a new maximum, say)
    for (const type of ["input", "change"]) {
      document.addEventListener(type, (e) => {
        const sliderId = followedBy(e.target);
        if (sliderId) followed.get(sliderId).listeners.forEach((onT) => onT(Number(e.target.value)));
      }, true);
    }
    document.addEventListener("keydown", (e) => {
      const sliderId = e.shiftKey ? followedBy(e.target) : null;
      if (!sliderId) return;
      const step = { ArrowRight: 10, ArrowUp: 10, ArrowLeft: -10, ArrowDown: -10 }[e.key];
      if (step === undefined || e.target.type !== "range") return;
      e.preventDefault();
      const max = Number(e.target.max);
      setT(sliderId, Math.min(max, Math.max(Number(e.target.min), Number(e.target.value) + step)));
    }, true);
    requestAnimationFrame(poll);
  }

  // onT(t) on every move of the slider, however it moved.
  function followSlider(sliderId, onT) {
    if (followed.size === 0) listenOnce();
    if (!followed.has(sliderId)) followed.set(sliderId, { seen: null, listeners: [] });
    followed.get(sliderId).listeners.push(onT);
  }

  // The index of the value nearest ``target`` (the first of equals): a recorded frame for a t or a noise level.
  function nearest(values, target) {
    let k = 0;
    values.forEach((v, i) => { if (Math.abs(v - target) < Math.abs(values[k] - target)) k = i; });
    return k;
  }

  // Play: the slider moves once per animation frame, across its whole range in about 4 s at speed 1, and stops at
  // the end (t = 0 for a run towards 0, T for one towards T); Play at the end starts again from the other end.
  // onState(playing) tells the controls when it starts and stops.
  function player(sliderId, direction, speedOf, onState = () => {}) {
    let handle = null;
    const ends = () => {
      const r = range(sliderId);
      const lo = Number(r.min), hi = Number(r.max);
      return direction > 0 ? [lo, hi] : [hi, lo];  // [start, end]
    };
    const stop = () => {
      if (handle !== null) cancelAnimationFrame(handle);
      handle = null;
      onState(false);
    };
    const tick = () => {
      const r = range(sliderId);
      if (!r) { stop(); return; }
      const [, end] = ends();
      const stride = Math.max(1, Math.round((Math.abs(Number(r.max) - Number(r.min)) / 240) * speedOf()));
      const t = readT(sliderId) + direction * stride;
      const past = direction > 0 ? t >= end : t <= end;
      setT(sliderId, past ? end : t);
      if (past) stop();
      else handle = requestAnimationFrame(tick);
    };
    return {
      play() {
        if (handle !== null || !range(sliderId)) return;
        const [start, end] = ends();
        if (readT(sliderId) === end) setT(sliderId, start);  // at the end: again from the start
        onState(true);
        handle = requestAnimationFrame(tick);
      },
      pause: stop,
      get playing() { return handle !== null; },
    };
  }

  // Play, Pause and the speed select inside a scrubber's element drive the slider (direction +1: towards T). While
  // it plays, Play is pressed (aria-pressed) and the .scrubber carries data-playing, which the tests read.
  function controls(element, sliderId, direction) {
    const playButton = element.querySelector("button.play");
    const box = element.querySelector(".scrubber") || element;
    const onState = (playing) => {
      playButton.setAttribute("aria-pressed", String(playing));
      box.dataset.playing = String(playing);
    };
    const play = player(sliderId, direction, () => Number(element.querySelector("select.speed").value), onState);
    playButton.addEventListener("click", () => play.play());
    element.querySelector("button.pause").addEventListener("click", () => play.pause());
  }

  // What the browser tests read after each paint: the t shown, the payload's version, and how many paints so far.
  function markPainted(element, t, version) {
    element.dataset.t = String(t);
    element.dataset.version = String(version);
    element.dataset.paints = String(Number(element.dataset.paints || 0) + 1);
  }

  // ---------------------------------------------------------------- frame atlases
  // A run's frames come as one PNG per panel, frame k at rows k·height …; a slider move copies one onto a canvas.
  function decodeImage(b64) {
    const img = new Image();
    img.src = `data:image/png;base64,${b64}`;
    return img.decode().then(() => img);
  }

  function drawFrame(canvas, atlas, row, height, width) {
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    const ctx = canvas.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(atlas, 0, row * height, width, height, 0, 0, width, height);
  }

  // ---------------------------------------------------------------- power spectra
  // Log-log power against frequency (cycles per pixel). series: [{values, color, label, dash}]; logRange: [lo, hi]
  // of log10 power, fixed by the caller so the axes stay put while t moves; mark: the index of a frequency to mark
  // with a dashed line, the band above it shaded (−1: none; 0: shade everything). The legend sits above the axes,
  // never on the curves; both axes are log₁₀ and say so, with a tick per decade of power.
  function spectrumPlot(canvas, freqs, series, logRange, mark) {
    fitWidth(canvas);
    const ctx = canvas.getContext("2d");
    const W = canvas.width, H = canvas.height, left = 52, right = 14, bottom = 30;
    ctx.font = "11px sans-serif";
    const legend = [];  // [x, baseline] of each entry: a row above the axes, a second where a narrow plot needs it
    let legendX = left, legendY = 15;
    series.forEach((s) => {
      const wide = 20 + ctx.measureText(s.label).width;
      if (legendX > left && legendX + wide > W) [legendX, legendY] = [left, legendY + 14];
      legend.push([legendX, legendY]);
      legendX += wide + 14;
    });
    const top = legendY + 9;
    const [lo, hi] = logRange;
    const span = Math.log10(freqs[freqs.length - 1] / freqs[0]);
    const fx = (f) => left + ((W - left - right) * Math.log10(f / freqs[0])) / span;
    const fy = (p) => top + ((H - top - bottom) * (hi - Math.log10(Math.max(p, 10 ** lo)))) / (hi - lo);
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, W, H);
    ctx.strokeStyle = "#ccc";
    ctx.strokeRect(left, top, W - left - right, H - top - bottom);
    if (mark >= 0) {
      const x = mark === 0 ? left : fx(freqs[mark]);
      ctx.fillStyle = "rgba(240, 140, 0, 0.08)";
      ctx.fillRect(x, top, W - right - x, H - top - bottom);
      if (mark > 0) {
        ctx.strokeStyle = "#333";
        ctx.setLineDash([4, 3]);
        ctx.beginPath();
        ctx.moveTo(x, top);
        ctx.lineTo(x, H - bottom);
        ctx.stroke();
      }
    }
    series.forEach((s, k) => {
      const [lx, ly] = legend[k];
      ctx.strokeStyle = s.color;
      ctx.lineWidth = 1.8;
      ctx.setLineDash(s.dash || []);
      ctx.beginPath();
      s.values.forEach((p, i) => (i ? ctx.lineTo(fx(freqs[i]), fy(p)) : ctx.moveTo(fx(freqs[i]), fy(p))));
      ctx.stroke();
      ctx.beginPath();  // the legend's sample of the line, then its name, in the margin above the axes
      ctx.moveTo(lx, ly - 4);
      ctx.lineTo(lx + 16, ly - 4);
      ctx.stroke();
      ctx.fillStyle = s.color;
      ctx.textAlign = "left";
      ctx.fillText(s.label, lx + 20, ly);
    });
    ctx.setLineDash([]);
    ctx.fillStyle = "#333";
    ctx.textAlign = "center";
    ctx.fillText("frequency (cycles per pixel, log₁₀ axis)", (W + left) / 2, H - 4);
    [freqs[0], freqs[freqs.length - 1]].forEach((f) => {
      const label = String(f.toPrecision(2)), half = ctx.measureText(label).width / 2 + 1;
      ctx.fillText(label, Math.min(Math.max(fx(f), half), W - half), H - 17);  // never cut by the canvas's edge
    });
    ctx.textAlign = "right";
    const every = Math.max(1, Math.ceil((Math.floor(hi) - Math.ceil(lo)) / 5));  // at most about six decade ticks
    for (let k = Math.ceil(lo); k <= Math.floor(hi); k += every) ctx.fillText(`1e${k}`, left - 3, fy(10 ** k) + 4);
    ctx.save();
    ctx.translate(11, (H + top - bottom) / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "center";
    ctx.fillText("power (log₁₀ axis)", 0, 0);
    ctx.restore();
    ctx.textAlign = "left";
  }

  // ---------------------------------------------------------------- the mount
  // One widget of the page. ``widget`` says only what it paints:
  //   direction  +1 or −1: Play moves t towards T or towards 0
  //   load(p, isCurrent)  take a parsed payload (decode its arrays, await its images); after an await, return
  //                       early unless isCurrent(): a newer payload has arrived meanwhile
  //   show(t)    paint t; return the t painted (the nearest recorded one, say)
  // The mount owns the rest: the version guard (an older payload never replaces a newer one), the slider, Play and
  // Pause, what the browser tests read after a paint, and a failure (a payload that does not parse, an image that
  // does not decode, a paint that throws), written into the widget's caption instead of a stale view.
  function mount(element, props, watch, widget) {
    const sliderId = element.querySelector(".scrubber").dataset.slider;
    const state = { version: -1, loaded: false };

    function fail(err) {
      let caption = element.querySelector(".caption");
      if (!caption) {
        caption = document.createElement("div");
        caption.className = "caption";
        element.querySelector(".scrubber").prepend(caption);
      }
      const message = err && err.message ? err.message : String(err);
      caption.textContent = `This view could not be drawn: ${message}`;
      element.dataset.failure = message;
      state.loaded = false;
    }

    function show(t) {
      if (!state.loaded) return;
      try {
        const shown = widget.show(t);
        if (shown !== undefined) markPainted(element, shown, state.version);
      } catch (err) {
        fail(err);
      }
    }

    async function load(json) {
      if (!json) return;
      try {
        const p = JSON.parse(json);
        if (p.version <= state.version) return;  // a late, older payload
        state.version = p.version;  // claimed now: a newer payload arriving while this one decodes wins
        await widget.load(p, () => p.version === state.version);
        if (p.version !== state.version) return;
        delete element.dataset.failure;
        state.loaded = true;
        show(readT(sliderId));
      } catch (err) {
        fail(err);
      }
    }

    followSlider(sliderId, show);
    controls(element, sliderId, widget.direction);
    let shownWidth = 0;  // its tab shown (0 -> its width) or the window resized: the plots fit the new width
    new ResizeObserver(([entry]) => {
      if (Math.round(entry.contentRect.width) === shownWidth) return;
      shownWidth = Math.round(entry.contentRect.width);
      show(readT(sliderId));
    }).observe(element);
    watch("value", () => load(props.value));
    load(props.value);
    return { refresh: () => show(readT(sliderId)) };  // repaint the slider's t (after a widget's own control moves)
  }

  // Formats a number the way the server's captions do.
  // an off-screen W×H canvas painted white: a plot's background, drawn once and copied under each cursor
  function whiteCanvas(W, H) {
    const canvas = document.createElement("canvas");
    canvas.width = W;
    canvas.height = H;
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, W, H);
    return canvas;
  }

  function fmt(v, digits) {
    if (v === Infinity) return "∞";
    if (!Number.isFinite(v)) return "–";
    return Number(v.toPrecision(digits)).toString();
  }

  return {
    bytes, float16, float32, toByte, paint, curves, spectrumPlot, readT, setT, mount, nearest, player, fmt,
    decodeImage, drawFrame, whiteCanvas, fitWidth,
    // for a widget not on mount yet: the same shared poller, controls and paint marks
    bindSlider: followSlider, controls, markPainted,
  };
})();
