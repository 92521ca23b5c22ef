"""The ``nlm`` command line (click), the top of the architecture.

Heavy modules (NumPy, Numba, the filters) are imported inside the commands,
so ``nlm --help`` answers quickly and imports no Numba.  Reading and writing
follow the lossless rules of :mod:`nlm.io`; ``docs/cli.md`` is the user
documentation.

| module | holds |
|---|---|
| ``app`` | the ``nlm`` group: signals, out-of-memory and unexpected errors as one ``Error:`` line; the commands |
| ``denoise``, ``noise``, ``psnr``, ``bench`` | one command each: its options and their checks |
| ``batch`` | dispatch of ``nlm denoise``: one file or many, to the job that fits |
| ``image_job`` | the in-memory job (read, estimate the noise, filter, write) |
| ``tiled_job`` | the tiled / out-of-core job |
| ``video_job`` | the video job (a clip or a TIFF stack along a time axis) |
| ``cluster``, ``cluster_guard``, ``worker_preload`` | ``dask.distributed``: client, failures, workers' signals |
| ``paths`` | path handling: inputs, outputs, batch jobs |
| ``report`` | what a run reports |
| ``options`` | the options shared by the commands |
| ``runtime`` | the run's state: signals, log records, unexpected errors (imports no other module here) |

Exit codes: 0 success; 1 a data or library error (unreadable or corrupt
input, a pixel type the output format cannot hold, a failed filter call);
2 a usage error (wrong arguments, an invalid option value, an existing output
without ``--overwrite``).  No output file is left behind by a failed run.
"""
