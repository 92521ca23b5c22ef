"""benchmarks.noise_choice: record, then compare two recordings (tiny images)."""

import json

import imageio.v3 as iio
import numpy as np

from benchmarks import noise_choice


def _folder(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    yy, xx = np.mgrid[:64, :64]
    iio.imwrite(d / "a.png", (40 + 3 * xx).astype(np.uint8))
    iio.imwrite(d / "b.png", (200 - 2 * yy + 20 * ((xx // 16) % 2)).astype(np.uint8))
    return str(d)


def test_record_and_compare(tmp_path, capsys):
    imgs = _folder(tmp_path)
    before, after = str(tmp_path / "before.json"), str(tmp_path / "after.json")
    assert noise_choice.main(["--images", imgs, "--save", before]) == 0
    rows = json.load(open(before))
    assert len(rows) == 2 * len(noise_choice.conditions())
    # one choice changed by hand: counted and both models denoised and scored
    key = next(k for k in rows if k.endswith("|gauss25"))
    changed = dict(rows)
    changed[key] = noise_choice._describe(noise_choice._rebuild(rows[key]["model"]).scaled(1.5)) | {
        "index": rows[key]["index"]}
    json.dump(changed, open(after, "w"))
    capsys.readouterr()
    assert noise_choice.main(["--images", imgs, "--compare", before, after]) == 0
    out = capsys.readouterr().out
    assert f"1 of {len(rows)} choices changed" in out and key in out and "changed cases: PSNR" in out
    assert noise_choice.main(["--images", imgs, "--compare", before, before]) == 0
    assert f"0 of {len(rows)} choices changed" in capsys.readouterr().out
    # accuracy: per folder and condition, the models chosen and the std ratio to the truth
    assert noise_choice.main(["--accuracy", before]) == 0
    out = capsys.readouterr().out
    assert "imgs" in out and all(c in out for c in noise_choice.conditions()) and "std ratio at 0.5" in out


def test_models_round_trip():
    for model in noise_choice.conditions().values():
        again = noise_choice._rebuild(noise_choice._params(model))
        assert repr(again) == repr(model)
