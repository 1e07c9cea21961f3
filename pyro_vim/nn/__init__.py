"""Pyro-free torch networks of VIM (Appendix A): encoder, slot attention, decoder, transitions
(unary, and binary for interacting objects)."""
from .decoder import BroadcastDecoder
from .encoder import Encoder, coordinate_grid, coords_to_pixels, pixels_to_coords
from .interaction import BinaryModules
from .slot_attention import SlotAttention
from .transition import MLP, KeyQuery, PositionFeatures, TransitionModules

__all__ = ["BroadcastDecoder", "Encoder", "SlotAttention", "TransitionModules", "BinaryModules",
           "KeyQuery", "PositionFeatures",
           "MLP", "coordinate_grid", "pixels_to_coords", "coords_to_pixels"]
