"""The drawing pad: a gr.HTML whose JavaScript (app/static/draw_canvas.js) records strokes with a mouse, a pen or a
finger and sends their points as JSON. No image crosses the network, and no component store on the server keeps
uploads for it (gradio's Sketchpad did, without bound)."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

STATIC = Path(__file__).resolve().parent.parent / "static"


def drawing_pad(elem_id: str, visible: bool = True) -> gr.HTML:
    """A square pad with a Clear button; its value is ``{"strokes": [[[x, y], …], …]}`` (x, y in [0, 1], y down)."""
    return gr.HTML(
        value="",
        html_template=(
            '<div class="pad-wrap"><canvas class="pad" width="400" height="400"></canvas>'
            '<div class="pad-row"><span class="pad-caption"></span><button class="clear">Clear</button></div></div>'
        ),
        css_template=(STATIC / "draw_canvas.css").read_text(),
        js_on_load=(STATIC / "draw_canvas.js").read_text(),
        elem_id=elem_id,
        visible=visible,
    )


def mask_pad(elem_id: str) -> gr.HTML:
    """A mask brush over the image being edited, one cell per pixel of the model; its value is
    ``{"mask": rows}`` (1 keep, 0 regenerate). The server sets it (with the image under it) as ``{"mask": rows,
    "image": data URL}``."""
    sizes = "".join(
        f'<option value="{r}"{" selected" if r == 1 else ""}>{2 * r + 1} px</option>' for r in (0, 1, 2, 4)
    )
    tools = (
        '<button class="tool on" data-value="0">Paint: regenerate</button>'
        '<button class="tool" data-value="1">Erase: keep</button>'
        f'<label>brush <select class="brush">{sizes}</select></label>'
    )
    return gr.HTML(
        value="",
        html_template=(
            '<div class="pad-wrap"><canvas class="pad mask" data-mode="mask" width="384" height="384"></canvas>'
            f'<div class="pad-row">{tools}<button class="clear">Keep all</button></div>'
            '<div class="pad-row"><span class="pad-caption"></span></div></div>'
        ),
        css_template=(STATIC / "draw_canvas.css").read_text(),
        js_on_load=(STATIC / "draw_canvas.js").read_text(),
        elem_id=elem_id,
    )
