"""Configuration: a frozen :class:`Settings`, built once at the edge and passed down."""

from lychgate.config.load import CONFIG_FILE, load_settings
from lychgate.config.paths import default_data_dir
from lychgate.config.settings import Limits, RoutingMode, Settings

__all__ = ["CONFIG_FILE", "Limits", "RoutingMode", "Settings", "default_data_dir", "load_settings"]
