"""lmac."""
