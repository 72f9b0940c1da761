"""mediasrv: a SIP media server and small PBX with a Cython media core."""

__version__ = "0.1.0"
