# The seed's worked example (docs/plugins.md): a folder plugin declares `plugin_class`.
from hue_plugin import HuePlugin

plugin_class = HuePlugin
