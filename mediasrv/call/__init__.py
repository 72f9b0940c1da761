"""The call model: legs (one SIP dialog + one engine stream), the media topology, the B2BUA.

`api.py` is what services may use; `b2bua.py` turns SIP and media events into calls;
`registrar.py`, `gatekeeper.py`, `failover.py`, `voicemail.py`, `refer.py`, `replaces.py`,
`direct_media.py` and `records.py` each own one concern of it.
"""
