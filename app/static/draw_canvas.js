// A drawing pad: strokes drawn with a mouse, a pen or a finger, sent to the server as their points, never as an
// image (gradio's Sketchpad uploads image layers to a store of its server that grows with what a client asks).
// Runs as the gr.HTML's js_on_load (element, props, trigger come from gradio).
//
// The value (props.value, JSON) it sends after each stroke and on Clear:
//   {"strokes": [[[x, y], …], …]}   x right, y down, each in [0, 1] of the pad; at most MAX_POINTS points in all
//
// With data-mode="mask" on its canvas it is a mask brush at the model's resolution instead (maskPad below).
(() => {
  const MAX_POINTS = 4000;  // app/settings.py LAB_SKETCH_MAX_POINTS: the server refuses more
  const MIN_STEP = 0.004;  // a new point only once the pen has moved this far (in pad units)
  const canvas = element.querySelector("canvas.pad");
  const caption = element.querySelector(".pad-caption");
  const ctx = canvas.getContext("2d");
  if (canvas.dataset.mode === "mask") return maskPad();
  let strokes = [];
  let drawing = null;

  const count = () => strokes.reduce((n, s) => n + s.length, 0);
  const at = (event) => {
    const box = canvas.getBoundingClientRect();
    const clamp = (v) => Math.min(1, Math.max(0, v));
    return [clamp((event.clientX - box.left) / box.width), clamp((event.clientY - box.top) / box.height)];
  };

  function paint() {
    const w = canvas.width, h = canvas.height;
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, w, h);
    ctx.strokeStyle = "#111111";
    ctx.lineWidth = Math.max(2, w / 60);
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    for (const stroke of strokes) {
      ctx.beginPath();
      stroke.forEach(([x, y], i) => (i ? ctx.lineTo(x * w, y * h) : ctx.moveTo(x * w, y * h)));
      if (stroke.length === 1) ctx.lineTo(stroke[0][0] * w + 0.5, stroke[0][1] * h);
      ctx.stroke();
    }
    const n = count();
    caption.textContent = n
      ? `${strokes.length} stroke${strokes.length > 1 ? "s" : ""}, ${n} points` + (n >= MAX_POINTS ? " (full)" : "")
      : "Draw here with the mouse, a pen or a finger: your strokes become the data.";
  }

  function send() {
    const rounded = strokes.map((s) => s.map(([x, y]) => [+x.toFixed(4), +y.toFixed(4)]));
    props.value = JSON.stringify({ strokes: rounded });
    trigger("change");
  }

  canvas.addEventListener("pointerdown", (event) => {
    if (count() >= MAX_POINTS) return;
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    drawing = [at(event)];
    strokes.push(drawing);
    paint();
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!drawing || count() >= MAX_POINTS) return;
    const [x, y] = at(event);
    const [px, py] = drawing[drawing.length - 1];
    if (Math.hypot(x - px, y - py) < MIN_STEP) return;
    drawing.push([x, y]);
    paint();
  });
  const finish = () => {
    if (!drawing) return;
    drawing = null;
    send();
  };
  canvas.addEventListener("pointerup", finish);
  canvas.addEventListener("pointercancel", finish);
  element.querySelector("button.clear").addEventListener("click", () => {
    strokes = [];
    paint();
    send();
  });
  paint();

  // ---------------------------------------------------------------- the mask brush
  // A grid of H × W cells over the image being edited; the brush marks cells to regenerate (0), the eraser gives
  // them back (1). Value in (props.value, JSON, from app/callbacks/editing.py::mask_pad_value):
  //   {"version", "mask": [[0 | 1, …] × W] × H, "image": a data: URL of the image at H × W, or ""}; an older
  //   version than the pad's is ignored
  // Value out, after each stroke and on Clear: {"mask": rows}, 1 keep, 0 regenerate.
  function maskPad() {
    const state = { version: -1, rows: null, image: null, tool: 0, painting: false };
    const cell = (event) => {
      const box = canvas.getBoundingClientRect();
      const h = state.rows.length, w = state.rows[0].length;
      const x = Math.floor(((event.clientX - box.left) / box.width) * w);
      const y = Math.floor(((event.clientY - box.top) / box.height) * h);
      return [Math.min(w - 1, Math.max(0, x)), Math.min(h - 1, Math.max(0, y))];
    };
    const radius = () => Number(element.querySelector("select.brush").value);

    function paintMask() {
      const W = canvas.width, H = canvas.height;
      ctx.imageSmoothingEnabled = false;
      ctx.fillStyle = "#888";
      ctx.fillRect(0, 0, W, H);
      if (!state.rows) {
        caption.textContent = "Pick an image and a mask first.";
        return;
      }
      if (state.image) ctx.drawImage(state.image, 0, 0, W, H);
      const h = state.rows.length, w = state.rows[0].length;
      ctx.fillStyle = "rgba(230, 40, 40, 0.55)";
      let regenerated = 0;
      state.rows.forEach((row, y) => row.forEach((v, x) => {
        if (v === 0) {
          regenerated++;
          ctx.fillRect((x * W) / w, (y * H) / h, Math.ceil(W / w), Math.ceil(H / h));
        }
      }));
      caption.textContent = `${regenerated} of ${w * h} pixels to regenerate (red); ` +
        (state.tool === 0 ? "drag to paint more." : "drag to give pixels back.");
    }

    function brush(event) {
      const [cx, cy] = cell(event);
      const r = radius();
      state.rows.forEach((row, y) => row.forEach((_, x) => {
        if ((x - cx) ** 2 + (y - cy) ** 2 <= r * r) row[x] = state.tool;
      }));
      paintMask();
    }

    function send() {
      props.value = JSON.stringify({ mask: state.rows });
      trigger("change");
    }

    function load(json) {
      if (!json) return paintMask();
      const p = JSON.parse(json);
      if (p.version === undefined || p.version <= state.version) return;  // our own value, or a late older one
      state.version = p.version;
      state.rows = p.mask.map((row) => row.slice());
      state.image = null;
      if (p.image) {
        const img = new Image();
        img.onload = () => { if (state.version === p.version) { state.image = img; paintMask(); } };
        img.src = p.image;
      }
      paintMask();
    }

    canvas.addEventListener("pointerdown", (event) => {
      if (!state.rows) return;
      event.preventDefault();
      canvas.setPointerCapture(event.pointerId);
      state.painting = true;
      brush(event);
    });
    canvas.addEventListener("pointermove", (event) => { if (state.painting) brush(event); });
    const finish = () => {
      if (!state.painting) return;
      state.painting = false;
      send();
    };
    canvas.addEventListener("pointerup", finish);
    canvas.addEventListener("pointercancel", finish);
    element.querySelectorAll("button.tool").forEach((button) => button.addEventListener("click", () => {
      state.tool = Number(button.dataset.value);
      element.querySelectorAll("button.tool").forEach((b) => b.classList.toggle("on", b === button));
      paintMask();
    }));
    element.querySelector("button.clear").addEventListener("click", () => {
      if (!state.rows) return;
      state.rows = state.rows.map((row) => row.map(() => 1));
      paintMask();
      send();
    });
    watch("value", () => load(props.value));
    load(props.value);
  }
})();
