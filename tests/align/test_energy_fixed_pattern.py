"""Energy registration ignores a pattern fixed in the field and common to every energy.

Ptychographic reconstructions carry the raster's and probe's imprint on the air around the
sample, identical at every angle and energy. Phase correlation whitens it to the weight of the
sample's edges, and it then pulls the offset towards zero; weighting each projection by its
sample's soft support removes it.
"""

import numpy as np
from scipy import ndimage

from chemtomo.align import register_energies

from align_testdata import misaligned_series  # tests/align is on sys.path (tests/conftest.py)


def in_wide_field_with_fixed_pattern(series, amplitude, seed=0):
    """The phantom's projections in a field twice as wide and tall, mostly air (as in a ptychographic
    field of view), with noise there and a smooth random pattern, the same at every angle and
    energy, over the whole field (the imprint of the scan)."""
    rng = np.random.default_rng(seed)
    n, ny, nx = next(iter(series.raw.values())).shape
    pattern = ndimage.gaussian_filter(rng.normal(size=(2 * ny, 2 * nx)), 1.5)
    pattern *= amplitude / pattern.std()
    out = {}
    for e, v in series.raw.items():
        noise = float(np.std(v - series.perfect[e]))
        wide = rng.normal(0.0, noise, size=(n, 2 * ny, 2 * nx)).astype(np.float32)
        wide[:, ny // 2:ny // 2 + ny, nx // 2:nx // 2 + nx] = v
        out[e] = (wide + pattern[None]).astype(np.float32)
    return out


def test_fixed_pattern_common_to_energies_does_not_register():
    errors_weighted, errors_plain = [], []
    for seed in (1, 2, 3):
        s = misaligned_series(seed=seed)
        e1, e2 = sorted(s.raw)
        contrast = float(np.percentile(s.raw[e1], 99))
        raw = in_wide_field_with_fixed_pattern(s, amplitude=0.03 * contrast, seed=seed)
        truth = s.offsets_px[e2]
        errors_weighted.append(np.abs(register_energies(raw, s.angles_deg)[e2] - truth).max())
        errors_plain.append(np.abs(register_energies(raw, s.angles_deg, air_weight=False)[e2] - truth).max())
    # weighted: within the 0.1 px of the target (the phantoms alone reach 0.015-0.08 px);
    # unweighted, the pattern (3 % of the sample's contrast, over three quarters of the field)
    # drags the median offset by several times more
    assert max(errors_weighted) < 0.1, errors_weighted
    assert np.mean(errors_plain) > 3 * np.mean(errors_weighted), (errors_plain, errors_weighted)
