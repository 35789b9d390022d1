"""The slide viewer: tiles, channel display, cell and region overlays, drawing tools."""

from app.viewer.display import ChannelDisplay, DisplaySettings
from app.viewer.slide_view import SlideView
from app.viewer.tools import ToolMode

__all__ = ["ChannelDisplay", "DisplaySettings", "SlideView", "ToolMode"]
