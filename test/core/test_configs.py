"""Configs become ROS parameters: flat, plain-typed, defaults valid, errors name the field."""

import dataclasses

import pytest

from spotvlm_ros.core.context import ContextConfig
from spotvlm_ros.core.focus import FocusConfig
from spotvlm_ros.core.keyframes import KeyframeConfig

CONFIGS = [ContextConfig, FocusConfig, KeyframeConfig]
PLAIN = {'int': int, 'float': float, 'bool': bool, 'str': str}


@pytest.mark.parametrize('config_cls', CONFIGS)
def test_fields_are_plain_and_defaults_match_their_type(config_cls):
    for field in dataclasses.fields(config_cls):
        assert field.type in PLAIN, f'{field.name} is {field.type}'
        assert type(field.default) is PLAIN[field.type], field.name  # a ROS parameter type


@pytest.mark.parametrize('config_cls', CONFIGS)
def test_configs_are_frozen(config_cls):
    config = config_cls()
    name = dataclasses.fields(config_cls)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(config, name, 1)


@pytest.mark.parametrize('config_cls', CONFIGS)
def test_every_numeric_field_refuses_nan_by_name(config_cls):
    for field in dataclasses.fields(config_cls):
        if field.type == 'float':
            with pytest.raises(ValueError, match=field.name):
                config_cls(**{field.name: float('nan')})
