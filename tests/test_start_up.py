"""The page is built without the model side: diffusers (with torch._dynamo) and matplotlib load after it is served."""

import subprocess
import sys

HEAVY = ("diffusers", "torch._dynamo", "matplotlib", "pipelines.scheduler", "pipelines.pipeline")


def test_building_the_page_imports_no_model_side():
    code = (
        "import sys; from app.ui import build_demo; build_demo(); "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1:] in ([], [""]), out.stdout


def test_the_warm_up_loads_the_model_side():
    code = (
        "import sys; from app import ui; ui.warm_up_in_background().join(); "
        f"print(','.join(m for m in {HEAVY!r} if m not in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1:] in ([], [""]), out.stdout
