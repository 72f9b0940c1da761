"""Test peers for mediasrv's end-to-end tests.

``audio`` (G.711, identity tones, ``Hearing``), ``phone`` (``TestPhone``, an independent
minimal SIP UA; its dialogs in ``call``, its RTP in ``rtp``, its SIP text in ``sipmsg``),
``sipp`` (run SIPp scenarios from ``tests/sipp``), ``baresip`` (drive a real baresip),
``require`` (find those programs or skip, or fail under ``CI=true``).
"""
