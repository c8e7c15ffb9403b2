"""linebox: an all-in-one PBX appliance for the 400 enterprise hotline."""

__version__ = "0.1.0"
