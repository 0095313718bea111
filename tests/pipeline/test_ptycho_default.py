"""One ptychography default (issue 22): the pipeline runs ``chemtomo.ptycho.DEFAULT_ALGORITHM``
unless told otherwise, ``auto`` (two chains chosen by split-half FRC) is gone, and a typo in a
chain fails when the config is read."""

import pytest

from chemtomo.core.errors import ConfigError
from chemtomo.pipeline.config import PtychoConfig, config_from_dict


def test_the_pipeline_default_is_the_library_default():
    assert PtychoConfig().algorithm == "default"
    assert config_from_dict({"ptycho": {"algorithm": "Default"}}).ptycho.algorithm == "Default"


def test_auto_is_refused_with_what_to_use_instead():
    with pytest.raises(ConfigError, match="ptycho.algorithm = 'auto'.*removed.*'default'"):
        config_from_dict({"ptycho": {"algorithm": "auto"}})


def test_a_misspelt_chain_is_refused_when_the_config_is_read():
    with pytest.raises(ConfigError, match="ptycho.algorithm"):
        config_from_dict({"input": {"manifest": "m.csv"}, "ptycho": {"algorithm": "RAAR:fifty"}})


def test_the_frc_weighting_is_a_config_key_that_reaches_each_scan(tmp_path):
    assert PtychoConfig().frc_weighting == "auto"
    with pytest.raises(ConfigError, match="ptycho.frc_weighting"):
        config_from_dict({"ptycho": {"frc_weighting": "sometimes"}})
    # one task of the ptycho stage on a low-dose scan (10⁴ photons on 32² frames, the default's
    # low-dose chain): "auto" weights it by its halves' FRC and says so, "off" does not
    from chemtomo.io import write_scan
    from chemtomo.pipeline.ptycho_stage import reconstruct_scan_file
    from tests.ptycho.test_default import _scan

    scan, obj, _ = _scan("pinhole", "defocus", 1e4)
    path = str(write_scan(tmp_path / "s.cxi", scan))
    opts = {"algorithm": "default", "object_shape": obj.shape, "frc": False, "seed": 0}
    auto = reconstruct_scan_file(path, {}, {**opts, "frc_weighting": "auto"})
    off = reconstruct_scan_file(path, {}, {**opts, "frc_weighting": "off"})
    assert auto["meta"]["frc_weighted"] and not off["meta"]["frc_weighted"]
    assert auto["frc_correlation"].size and not off["frc_correlation"].size  # the halves ran for the weight


def test_oversample_is_a_config_key_that_reaches_each_scan(tmp_path):
    assert PtychoConfig().oversample == 0  # from the fit (ptycho.PtychoOptions.oversample)
    with pytest.raises(ConfigError, match="ptycho.oversample"):
        config_from_dict({"ptycho": {"oversample": 5}})
    from chemtomo.io import write_scan
    from chemtomo.pipeline.ptycho_stage import reconstruct_scan_file
    from tests.ptycho.test_finegrid import alias_free_scan

    scan, obj = alias_free_scan(1e7, seed=0)
    path = str(write_scan(tmp_path / "s.cxi", scan))
    opts = {"algorithm": "ePIE:3", "object_shape": obj.shape, "frc": False, "seed": 0}
    fine = reconstruct_scan_file(path, {}, {**opts, "oversample": 2})
    one = reconstruct_scan_file(path, {}, opts)  # the default, 0: three iterations do not converge, so one grid
    assert fine["meta"]["oversample"] == 2 and one["meta"]["oversample"] == 1
    assert fine["transmission"].shape == one["transmission"].shape == obj.shape
    assert fine["meta"]["pixel_m"] == pytest.approx(one["meta"]["pixel_m"], rel=1e-12)
