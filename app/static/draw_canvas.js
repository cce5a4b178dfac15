// A drawing pad: strokes drawn with a mouse, a pen or a finger, sent to the server as their points, never as an
// image (gradio's Sketchpad uploads image layers to a store of its server that grows with what a client asks).
// Runs as the gr.HTML's js_on_load (element, props, trigger come from gradio).
//
// The value (props.value, JSON) it sends after each stroke and on Clear:
//   {"strokes": [[[x, y], …], …]}   x right, y down, each in [0, 1] of the pad; at most MAX_POINTS points in all
(() => {
  const MAX_POINTS = 4000;  // app/settings.py LAB_SKETCH_MAX_POINTS: the server refuses more
  const MIN_STEP = 0.004;  // a new point only once the pen has moved this far (in pad units)
  const canvas = element.querySelector("canvas.pad");
  const caption = element.querySelector(".pad-caption");
  const ctx = canvas.getContext("2d");
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
})();
