"""Pyro-free torch networks of VIM (Appendix A): encoder, slot attention, decoder, transitions."""
from .decoder import BroadcastDecoder
from .encoder import Encoder, coordinate_grid, coords_to_pixels, pixels_to_coords
from .slot_attention import SlotAttention
from .transition import MLP, KeyQuery, PositionFeatures, TransitionModules

__all__ = ["BroadcastDecoder", "Encoder", "SlotAttention", "TransitionModules", "KeyQuery",
           "PositionFeatures",
           "MLP", "coordinate_grid", "pixels_to_coords", "coords_to_pixels"]
