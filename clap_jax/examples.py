"""The bundled example clips and the everyday labels the bundled commands classify them with."""
import os

EXAMPLES_DIR = os.path.join(os.path.dirname(__file__), "bundled", "examples")
EVERYDAY_LABELS = ("high beep", "low beep", "rain", "siren wailing", "dog barking", "clock ticking", "white noise",
                   "rising chirp", "bell", "wind", "engine idling", "birds chirping", "applause", "footsteps")
