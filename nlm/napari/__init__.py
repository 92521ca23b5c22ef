"""The napari plugin of nlm: a "Denoise (nlm)" dock widget and sample data.

napari finds it through the ``napari.manifest`` entry point (``nlm =
nlm.napari:napari.yaml``); the manifest names the widget factory in
:mod:`nlm.napari._widget` and the samples in :mod:`nlm.napari._sample`.
Install it with the ``napari`` extra (``pip install "nlm[napari]"``, which
brings napari and magicgui but no Qt binding: add PyQt6 or PySide6).

This package sits on top of the library (it calls the public
``nlm.denoise_nl_means``, ``nlm.denoise_nl_bayes`` and
``nlm.estimate_noise``; nothing in ``nlm`` imports it).  Importing it, or
:mod:`nlm.napari._run` (the computation, tested without napari) and
:mod:`nlm.napari._sample`, imports neither napari nor Qt; only
:mod:`nlm.napari._widget` does.  See docs/napari.md.
"""
