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
