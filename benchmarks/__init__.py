"""Benchmarks of the ``nlm`` toolkit (``python -m benchmarks.psnr``)."""
