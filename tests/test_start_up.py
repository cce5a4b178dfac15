"""The page is built without the model side: diffusers (with torch._dynamo) and matplotlib load after it is served."""

import subprocess
import sys

HEAVY = ("diffusers", "torch._dynamo", "matplotlib", "pipelines.scheduler", "pipelines.pipeline")


def heavy_modules_after(code: str) -> set[str]:
    """Which of HEAVY a fresh interpreter has imported after running ``code``."""
    report = f"import sys; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", f"{code}; {report}"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return set(filter(None, out.stdout.strip().splitlines()[-1].split(","))) if out.stdout.strip() else set()


def test_building_the_page_imports_no_model_side():
    assert heavy_modules_after("from app.ui import build_demo; build_demo()") == set()


def test_the_warm_up_loads_the_model_side():
    assert heavy_modules_after("from app import ui; ui.warm_up_in_background().join()") == set(HEAVY)


def test_requests_during_the_warm_up_import_the_model_side_in_turn():
    """diffusers' lazy modules, imported by two threads at once, fail in one of them ("cannot import name
    'UNet2DModel' from 'diffusers'"): the warm-up and the first requests take turns (pipelines.imports)."""
    code = (
        "from concurrent.futures import ThreadPoolExecutor; from app import models, rendering, ui; "
        "from pipelines.samplers import SAMPLERS; warm = ui.warm_up_in_background(); pool = ThreadPoolExecutor(4); "
        "jobs = [pool.submit(models.get_pipeline, models.default_model()), "
        "pool.submit(lambda: SAMPLERS['heun'].scheduler_class), pool.submit(rendering.pyplot), "
        "pool.submit(lambda: __import__('pipelines').DDPMExplorerPipeline)]; [j.result() for j in jobs]; warm.join()"
    )
    assert heavy_modules_after(code) == set(HEAVY)
