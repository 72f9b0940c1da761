"""SIP dialogs: RFC 3261 §12 (with §13.2.2.4, §13.3.1.4 and §15 for INVITE dialogs).

How this works: a `Dialog` holds the §12.1 state — Call-ID, local/remote tag, local/remote
URI, remote target, route set, local/remote CSeq — built by `Dialog.from_uac` (§12.1.2:
route set = Record-Route of the response, reversed) or `Dialog.from_uas` (§12.1.1: route set
= Record-Route of the request, in order). Its lifecycle is the table `DIALOG_TABLE`, keyed by
(state, event), with the §12 states early/confirmed/terminated; events are the class of a
response to the dialog-creating INVITE ("1xx", "2xx", "300-699"), "BYE", and "error"
(a 481 or 408 to an in-dialog request, §12.2.1.2).

`create_request` builds in-dialog requests per §12.2.1.1 (loose or strict routing, CSeq
incremented, ACK reusing the INVITE's CSeq). `check_request` applies §12.2.2 to incoming
ones (lower CSeq -> 500, target refresh). `DialogSet` files dialogs by
(Call-ID, local tag, remote tag) and finds the one an incoming message belongs to.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum

from .message import Headers, Request, Response
from .transaction import response_class
from .uri import NameAddr, without_tag

#: Requests that may change the remote target (§12.2, RFC 3311 §5.1, RFC 3515, RFC 6665).
TARGET_REFRESH = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"})


class DialogState(Enum):
    """Dialog states of RFC 3261 §12."""

    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"

    __hash__ = object.__hash__  # identity, in C (see transaction.State)


EARLY, CONFIRMED, TERMINATED = DialogState.EARLY, DialogState.CONFIRMED, DialogState.TERMINATED

DIALOG_TABLE: dict[tuple[DialogState, str], DialogState] = {
    (EARLY, "1xx"): EARLY,
    (EARLY, "2xx"): CONFIRMED,
    (EARLY, "300-699"): TERMINATED,  # §12.3: a non-2xx final ends the early dialog
    (EARLY, "BYE"): TERMINATED,  # §15: the caller may BYE an early dialog
    (EARLY, "error"): TERMINATED,
    (CONFIRMED, "2xx"): CONFIRMED,  # retransmitted 2xx, or another 2xx to the same INVITE
    (CONFIRMED, "BYE"): TERMINATED,
    (CONFIRMED, "error"): TERMINATED,
}

DialogId = tuple[str, str, str]


def _contact_uri(message: Request | Response) -> str | None:
    contacts = message.headers.get_all("Contact")
    return str(NameAddr.parse(contacts[0]).uri) if contacts else None


@dataclass(eq=False, slots=True)  # one per live call leg, held for the call's length
class Dialog:
    """One dialog (§12). Build with `from_uac`/`from_uas`; mutate through its methods."""

    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str
    remote_uri: str
    remote_target: str
    route_set: list[str] = field(default_factory=list)
    local_seq: int = 0
    remote_seq: int | None = None
    is_uac: bool = True
    state: DialogState = EARLY
    invite_seq: int = 0
    local_contact: str | None = None

    @property
    def id(self) -> DialogId:
        """(Call-ID, local tag, remote tag), the dialog ID of §12."""
        return (self.call_id, self.local_tag, self.remote_tag)

    @classmethod
    def from_uac(cls, request: Request, response: Response) -> Dialog:
        """The caller's dialog from its request and a 101-299 response with a To tag
        (§12.1.2)."""
        if not response.to_tag:
            raise ValueError("a dialog needs a response with a To tag")
        dialog = cls(
            call_id=request.call_id, local_tag=request.from_tag or "",
            remote_tag=response.to_tag, local_uri=without_tag(request.headers.get("From")
                                                                 or ""),
            remote_uri=without_tag(response.headers.get("To") or ""),
            remote_target=_contact_uri(response) or request.uri,
            route_set=list(reversed(response.headers.get_all("Record-Route"))),
            local_seq=request.cseq[0], is_uac=True, invite_seq=request.cseq[0],
            local_contact=request.headers.get("Contact"),
        )
        dialog.handle(response_class(response.status))
        return dialog

    @classmethod
    def from_uas(cls, request: Request, response: Response) -> Dialog:
        """The callee's dialog from the request and its own 101-299 response (§12.1.1)."""
        if not response.to_tag:
            raise ValueError("a dialog needs a response with a To tag")
        dialog = cls(
            call_id=request.call_id, local_tag=response.to_tag,
            remote_tag=request.from_tag or "",
            local_uri=without_tag(request.headers.get("To") or ""),
            remote_uri=without_tag(request.headers.get("From") or ""),
            remote_target=_contact_uri(request) or "",
            route_set=request.headers.get_all("Record-Route"),
            remote_seq=request.cseq[0], is_uac=False, invite_seq=request.cseq[0],
            local_contact=response.headers.get("Contact"),
        )
        dialog.handle(response_class(response.status))
        return dialog

    # -- state --------------------------------------------------------------------------------
    def handle(self, event: str) -> DialogState:
        """Apply a lifecycle event through `DIALOG_TABLE`; unknown pairs leave the state."""
        self.state = DIALOG_TABLE.get((self.state, event), self.state)
        return self.state

    @property
    def terminated(self) -> bool:
        """True once the dialog ended; the endpoint then forgets it."""
        return self.state is TERMINATED

    def update_from_response(self, request: Request, response: Response) -> None:
        """Apply a response to a request we sent in (or to create) this dialog.

        A 2xx to the dialog-creating INVITE fixes the route set (§13.2.2.4); a 2xx to a
        target refresh replaces the remote target (§12.2.1.2); 481/408 end the dialog.
        """
        method, kind = request.method, response_class(response.status)
        if method == "INVITE" and request.cseq[0] == self.invite_seq and self.is_uac:
            if kind == "2xx" and self.state is EARLY:
                self.route_set = list(reversed(response.headers.get_all("Record-Route")))
            self.handle(kind)
        if kind == "2xx" and method in TARGET_REFRESH:
            self.remote_target = _contact_uri(response) or self.remote_target
        if response.status in (481, 408):
            self.handle("error")

    # -- requests -----------------------------------------------------------------------------
    def check_request(self, request: Request) -> int | None:
        """§12.2.2 for an incoming in-dialog request: the error status to answer, or None.

        Out-of-order CSeq -> 500; otherwise the remote CSeq advances and a target refresh
        request's Contact becomes the remote target.
        """
        if request.method in ("ACK", "CANCEL"):
            return None
        number = request.cseq[0]
        if self.remote_seq is not None and number < self.remote_seq:
            return 500
        self.remote_seq = number
        if request.method in TARGET_REFRESH:
            self.remote_target = _contact_uri(request) or self.remote_target
        if request.method == "INVITE":
            self.invite_seq = number
        return None

    def create_request(self, method: str, *, body: bytes = b"",
                       headers: tuple[tuple[str, str], ...] = ()) -> Request:
        """Build an in-dialog request (§12.2.1.1). ACK reuses the last INVITE's CSeq
        (§13.2.2.4); every other method takes the next local CSeq. No Via: the endpoint adds
        it when sending."""
        if method == "ACK":
            number = self.invite_seq
        else:
            self.local_seq += 1
            number = self.local_seq
            if method == "INVITE":
                self.invite_seq = number
        uri, routes = self._request_uri_and_routes()
        out = Headers([("Max-Forwards", "70")])
        out.add("From", f"{self.local_uri};tag={self.local_tag}")
        out.add("To", f"{self.remote_uri};tag={self.remote_tag}")
        out.add("Call-ID", self.call_id)
        out.add("CSeq", f"{number} {method}")
        for route in routes:
            out.add("Route", route)
        if self.local_contact and method in TARGET_REFRESH:
            out.add("Contact", self.local_contact)
        for name, value in headers:
            out.add(name, value)
        return Request(method, uri, out, body)

    def _request_uri_and_routes(self) -> tuple[str, list[str]]:
        """§12.2.1.1: loose routing keeps the target as Request-URI; a strict router first
        in the route set becomes the Request-URI and the target goes last in Route."""
        if not self.route_set:
            return self.remote_target, []
        first = NameAddr.parse(self.route_set[0]).uri
        if "lr" in first.params:
            return self.remote_target, list(self.route_set)
        return str(first), self.route_set[1:] + [f"<{self.remote_target}>"]

    def next_hop(self) -> tuple[str, int, str]:
        """(host, port, transport) to send the next request to: the first Route, else the
        remote target (§8.1.2, without RFC 3263 DNS look-ups)."""
        text = self.route_set[0] if self.route_set else f"<{self.remote_target}>"
        uri = NameAddr.parse(text).uri
        host, port = uri.host_port()
        return host, port, (uri.transport or "UDP").lower()


class DialogSet:
    """The dialogs of one endpoint, by dialog ID (§12): lookup for incoming messages.
    Also filed by (Call-ID, local tag), the INVITE that made them, for `early_of`."""

    def __init__(self) -> None:
        self._dialogs: dict[DialogId, Dialog] = {}
        self._by_invite: dict[tuple[str, str], dict[DialogId, Dialog]] = {}

    def __len__(self) -> int:
        return len(self._dialogs)

    def __iter__(self) -> Iterator[Dialog]:
        return iter(list(self._dialogs.values()))

    def add(self, dialog: Dialog) -> Dialog:
        """File `dialog`; an existing dialog with the same ID is kept and returned."""
        kept = self._dialogs.setdefault(dialog.id, dialog)
        if kept is dialog:
            self._by_invite.setdefault((dialog.call_id, dialog.local_tag), {})[dialog.id] = dialog
        return kept

    def remove(self, dialog: Dialog) -> None:
        """Forget `dialog` (no error if it was already gone)."""
        if self._dialogs.get(dialog.id) is dialog:
            del self._dialogs[dialog.id]
            key = (dialog.call_id, dialog.local_tag)
            siblings = self._by_invite[key]
            del siblings[dialog.id]
            if not siblings:
                del self._by_invite[key]

    def get(self, dialog_id: DialogId) -> Dialog | None:
        """The dialog with this ID, or None."""
        return self._dialogs.get(dialog_id)

    def for_request(self, request: Request) -> Dialog | None:
        """The dialog an incoming request belongs to: To tag is ours, From tag theirs."""
        return self._dialogs.get((request.call_id, request.to_tag or "",
                                  request.from_tag or ""))

    def for_response(self, response: Response) -> Dialog | None:
        """The dialog a response to our request belongs to: From tag ours, To tag theirs."""
        return self._dialogs.get((response.call_id, response.from_tag or "",
                                  response.to_tag or ""))

    def for_sent_request(self, request: Request) -> Dialog | None:
        """The dialog a request we send belongs to (From tag ours, To tag theirs)."""
        return self._dialogs.get((request.call_id, request.from_tag or "",
                                  request.to_tag or ""))

    def early_of(self, call_id: str, local_tag: str) -> list[Dialog]:
        """Early dialogs created by one INVITE (forking may create several, §13.2.2.4)."""
        siblings = self._by_invite.get((call_id, local_tag))
        return [d for d in siblings.values() if d.state is EARLY] if siblings else []
