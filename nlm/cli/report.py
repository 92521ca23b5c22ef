"""What a run reports: the per-file record, the noise model in words, the report lines."""

import time


def make_record(src, dst, image, sigma, h, timings, t0, **extra):
    """What one denoised file reports: ``sigma`` and ``h`` are (value, source) pairs."""
    return dict(
        src=src,
        dst=dst,
        image=image,
        sigma=sigma[0],
        sigma_source=sigma[1],
        h=h[0],
        h_source=h[1],
        timings=timings,
        total=time.perf_counter() - t0,
        **extra,
    )


def describe_model(model):
    if model is None:
        return "gaussian"
    if model.clip:  # observations clipped at the data's bounds (NL-Bayes accounts for it)
        lo, hi = (("none" if abs(b) == float("inf") else fmt_num(b, 6)) for b in model.bounds)
        return _describe_model_params(model) + f", clipped to [{lo}, {hi}]"
    return _describe_model_params(model)


def _describe_model_params(model):
    if model.name == "gaussian":
        return f"gaussian, sigma {fmt_num(model.sigma, 4)}"
    if model.name == "poisson":
        return f"poisson-gaussian, gain {fmt_num(model.gain, 4)}, sigma {fmt_num(model.sigma, 4)}"
    if model.name == "speckle":
        return f"speckle, variance {fmt_num(model.var, 4)}"
    if model.name == "rician":
        return f"rician, sigma {fmt_num(model.sigma, 4)}"
    return f"gamma (SAR), L {fmt_num(model.looks, 4)} looks"


def fmt_num(value, digits=6):
    return "-" if value is None else f"{value:.{digits}g}"


def report_lines(rec, params, verbose):
    lines = [
        f"{rec['src']} ({rec['image'].describe()}) -> {rec['dst']}",
        f"  sigma           {fmt_num(rec['sigma'])} ({rec['sigma_source']})",
        f"  h               {fmt_num(rec['h'])} ({rec['h_source']})",
        f"  method          {'non-local Bayes' if params.method == 'bayes' else 'non-local means'}",
        f"  patch size      {params.patch_size or 'automatic'}",
        f"  patch distance  {params.patch_distance or 'automatic'}",
        f"  noise model     {describe_model(rec['model'])}"
        + (f" ({rec['model_source']})" if rec["model_source"] else ""),
        f"  time            {rec['timings']['filter']:.2f} s filter, {rec['total']:.2f} s in all",
    ]
    if rec["image"].has_alpha:
        lines.insert(1, "  alpha           passed through unchanged")
    if rec.get("tiles"):
        lines.insert(-1, f"  tiles           {rec['tiles']} (processed tile by tile)")
    if verbose:
        steps = ", ".join(f"{k} {v:.3f} s" for k, v in rec["timings"].items())
        lines.append(f"  steps           {steps}")
    return lines


def input_notes(rec_or_image, src):
    image = rec_or_image["image"] if isinstance(rec_or_image, dict) else rec_or_image
    return [f"note: {src}: {n}" for n in image.notes]
