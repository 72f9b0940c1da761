"""Test peers for mediasrv's end-to-end tests.

``audio`` (G.711, identity tones, ``Hearing``), ``phone`` (``TestPhone``, an independent
minimal SIP UA with RTP), ``sipp`` (run SIPp scenarios from ``tests/sipp``), ``baresip``
(drive a real baresip), ``require`` (find those programs or skip/fail).
"""
