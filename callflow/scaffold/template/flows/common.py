"""What the flows in this folder share. Flows import it as ``from .common import CHOICES``."""

CHOICES = {"1": "sales", "2": "support", "9": "repeat"}
"""Menu keys (the menu prompt says: 1 sales, 2 support, 9 hear this again)."""
