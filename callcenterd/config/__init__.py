"""Configuration: strict YAML, conf.d overrides, pydantic models, located errors.

    from callcenterd.config import load_config, ConfigError
    config = load_config("/etc/callcenterd/callcenterd.yaml")
"""

from callcenterd.config.errors import ConfigError
from callcenterd.config.load import config_from_mapping, load_config
from callcenterd.config.models import Config

__all__ = ["Config", "ConfigError", "config_from_mapping", "load_config"]
