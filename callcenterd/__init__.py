"""callcenterd: ACD, IVR, dialer and CDR beside an Asterisk or FreeSWITCH PBX."""
__version__ = "0.1.0"
