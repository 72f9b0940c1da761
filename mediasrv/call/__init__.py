"""The call model: legs (one SIP dialog + one engine stream), the media topology, the B2BUA.

`api.py` is what services may use (`control.py` implements it); `b2bua.py` turns SIP and media
events into calls; `legs.py` is the one table of live legs and the one-leg operations every
part shares; `clock.py` is the time the layer is given. `registrar.py`, `gatekeeper.py`,
`failover.py`, `voicemail.py`, `refer.py`, `replaces.py`, `direct_media.py` and `records.py`
each own one concern of it and depend on `legs.py`, not on the B2BUA.
"""
