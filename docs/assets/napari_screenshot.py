"""Take docs/assets/napari-widget.png: the "Denoise (nlm)" widget after a run on a real image.

Run from the repository root with the ``napari-test`` extra, under a display::

    xvfb-run -a -s "-screen 0 1600x900x24" python docs/assets/napari_screenshot.py

It opens the plugin's camera sample (``samples/camera_speckle04.png``, speckle noise), docks the widget
through napari's plugin manager as a user would, runs it (NL-Bayes, noise model ``auto``), shows the
noisy and the denoised layers side by side (grid mode) and saves the whole window, reduced to a palette
PNG to stay small.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().with_name("napari-widget.png")


def main() -> int:
    import napari
    import numpy as np
    from PIL import Image
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(show=True, title="nlm")
    viewer.window.resize(1500, 640)
    viewer.open_sample("nlm", "camera_speckle")
    viewer.layers.remove("camera speckle clean")
    _, widget = viewer.window.add_plugin_dock_widget("nlm", "Denoise")
    widget.image.value = viewer.layers["camera speckle noisy"]
    widget.method.value = "bayes"
    worker = widget()
    app = QApplication.instance()
    t0 = time.perf_counter()
    while not getattr(worker, "_nlm_finished", False):
        app.processEvents()
        time.sleep(0.01)
        if time.perf_counter() - t0 > 300:
            print("the run did not finish", file=sys.stderr)
            return 1
    viewer.grid.enabled = True
    viewer.grid.shape = (1, 2)
    viewer.reset_view()
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)
    shot = viewer.screenshot(canvas_only=False, flash=False)
    img = Image.fromarray(np.asarray(shot)[..., :3])
    img = img.quantize(colors=128, method=Image.Quantize.MEDIANCUT)
    img.save(OUT, optimize=True)
    print(f"{OUT}: {img.size[0]}x{img.size[1]}, {OUT.stat().st_size / 1024:.0f} KB; "
          f"{widget._nlm_info.value}")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
