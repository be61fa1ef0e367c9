"""The authorization matrix of docs/authorization.md, sent as every role (issue 7).

The expected answers are read from the doc's tables; each row runs in a fresh world.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import websockets

from testkit.accounts import Front
from testkit.client import Client, http
from testkit.geo import near
from testkit.squares import insert_grids, join

DOC = Path(__file__).resolve().parents[2] / "docs" / "authorization.md"
ROLES = ["resident", "resident2", "responder", "responder2", "dispatcher", "mediator", "mediator2", "agency",
         "admin", "none"]


def read_tables() -> dict[str, dict[str, str]]:
    rows: dict[str, dict[str, str]] = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == len(ROLES) + 1 and cells[0].startswith("`"):
            rows[cells[0].replace("`", "")] = dict(zip(ROLES, cells[1:]))
    return rows


def read_clerk_table() -> dict[str, str]:
    """The front desk's own table (`| command or route | clerk |`)."""
    rows: dict[str, str] = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0].startswith("`"):
            rows[cells[0].replace("`", "")] = cells[1]
    return rows


TABLE = read_tables()
CLERK_TABLE = read_clerk_table()


class World:
    """One account per column, each connected; a resident's device ids kept for fresh tokens."""

    def __init__(self, hl: Front) -> None:
        self.hl = hl
        self.c: dict[str, Client] = {}
        self.username: dict[str, str] = {}
        self.device: dict[str, str] = {}

    async def build(self) -> World:
        hl = self.hl
        for role in ("resident", "resident2"):
            self.device[role] = "dev-" + uuid.uuid4().hex
            self.c[role] = await hl.connect(await hl.device_token(self.device[role]))
        spec = {"responder": ("responder", ["medical"]), "responder2": ("responder", ["fire"]),
                "dispatcher": ("dispatcher", None), "mediator": ("mediator", None),
                "mediator2": ("mediator", None), "agency": ("agency", None), "admin": ("admin", None),
                "clerk": ("clerk", None)}
        for col, (role, skills) in spec.items():
            self.username[col] = f"{col}-{uuid.uuid4().hex[:6]}"
            await hl.add_user(self.username[col], role, name=col, skills=skills)
            self.c[col] = await hl.connect(await hl.login(self.username[col]))
        await self.c["responder"].ok("duty.start", **near(0.001))
        await self.c["responder2"].ok("duty.start", **near(0.002))
        return self

    async def token(self, col: str) -> str:
        if col in self.device:
            return await self.hl.device_token(self.device[col])
        return await self.hl.login(self.username[col])

    def id(self, col: str) -> str:
        return self.c[col].account_id

    async def escalated(self) -> str:
        """A fresh incident of resident's that no one can be offered (category other needs 'general')."""
        r = await self.c["resident"].ok("help.request", request_id=uuid.uuid4().hex, category="other", **near(0))
        iid: str = r["incident"]["id"]
        return iid

    async def offered(self) -> tuple[str, str]:
        inc = (await self.c["resident"].ok("help.request", request_id=uuid.uuid4().hex, category="medical",
                                           **near(0)))["incident"]
        offer = await self.c["responder"].push("offer", lambda m: m["incident"]["id"] == inc["id"])
        return inc["id"], offer["offer_id"]

    async def assigned(self) -> str:
        iid, oid = await self.offered()
        await self.c["responder"].ok("offer.accept", offer_id=oid)
        return iid

    async def spare_responder(self) -> str:
        name = "spare-" + uuid.uuid4().hex[:6]
        await self.hl.add_user(name, "responder", skills=["general"])
        c = await self.hl.connect(await self.hl.login(name))
        await c.ok("duty.start", **near(0.5))   # out of radius: never offered automatically
        return c.account_id


    # mediation: a case filed by `resident` naming two others; a third resident joined as party B;
    # `mediator` took it and invited `agency`; `resident2` and `mediator2` are outsiders
    async def case(self) -> dict[str, Any]:
        if "_case" not in self.__dict__:
            filer = self.c["resident"]
            case = (await filer.ok("case.open", category="neighbour", summary="Water through the ceiling",
                                   other_parties=[{"name": "B"}, {"name": "C"}]))["case"]
            codes = [p["join_code"] for p in case["invited"]]
            b = await self.hl.resident()
            await b.ok("case.join", join_code=codes[0])
            await self.c["mediator"].ok("case.take", case_id=case["id"])
            await self.c["mediator"].ok("case.invite", case_id=case["id"], account_id=self.id("agency"))
            self.__dict__["_case"] = {"id": case["id"], "spare_code": codes[1], "b": b}
        made: dict[str, Any] = self.__dict__["_case"]
        return made

    async def fresh_case(self) -> str:
        r = await self.c["resident"].ok("case.open", category="family", summary="Inheritance of a flat",
                                        other_parties=[{"name": "Sister"}])
        cid: str = r["case"]["id"]
        return cid


Fields = Callable[[World, str], Awaitable[dict[str, Any]]]


async def nothing(w: World, role: str) -> dict[str, Any]:
    return {}


def once(make: Callable[[World], Awaitable[dict[str, Any]]]) -> Fields:
    """The same target for every role (built on first use)."""
    async def fields(w: World, role: str) -> dict[str, Any]:
        if "once" not in w.__dict__:
            w.__dict__["once"] = await make(w)
        made: dict[str, Any] = w.__dict__["once"]
        return made
    return fields


async def _offer(w: World) -> dict[str, Any]:
    return {"offer_id": (await w.offered())[1]}


async def _offered_id(w: World) -> str:
    return (await w.offered())[0]


async def _note_fields(w: World) -> dict[str, Any]:
    return {"incident_id": await w.assigned(), "text": "third floor, blue door"}


async def _assigned_progress(w: World) -> dict[str, Any]:
    return {"incident_id": await w.assigned(), "status": "en_route"}


WS_FIELDS: dict[str, Fields] = {
    "ping": nothing,
    "help.request": lambda w, r: _coro({"request_id": uuid.uuid4().hex, "category": "other", **near(0)}),
    "help.cancel": once(lambda w: _wrap(w.escalated(), "incident_id")),
    "incident.note": once(lambda w: _note_fields(w)),
    "duty.start": lambda w, r: _coro(near(0.003)),
    "duty.end": nothing,
    "location.update": lambda w, r: _coro(near(0.004)),
    "offer.accept": once(_offer),
    "offer.decline": once(_offer),
    "incident.progress": once(_assigned_progress),
    "queue.watch": nothing,
    "incident.assign": lambda w, r: _staff_target(w, r, _assign_fields),
    "incident.close": lambda w, r: _staff_target(w, r, _close_fields),
    "incident.locate": lambda w, r: _staff_target(w, r, _locate_fields),
    "incident.ack": lambda w, r: _staff_target(w, r, lambda w: _wrap(w.escalated(), "incident_id")),
    "incident.events": once(lambda w: _wrap(w.assigned(), "incident_id")),
    # the responder asked by a pending offer reads what they are weighing up (dispatch/access.py)
    "incident.events offered": once(lambda w: _wrap(_offered_id(w), "incident_id")),
    "incident.create": lambda w, r: _coro({"request_id": uuid.uuid4().hex, "category": "other",
                                           "channel": "phone", **near(0)}),
    "incident.link": lambda w, r: _staff_target(w, r, _link_fields),
    "queue.watch grids": once(lambda w: _grids(w)),
    "places.search": lambda w, r: _coro({"q": "park"}),
    "case.open": lambda w, r: _coro({"category": "consumer", "summary": "Broken fridge",
                                     "other_parties": [{"name": "Shop"}]}),
    # a case for people at the counter (issue 13)
    "case.open visitors": lambda w, r: _coro({"category": "consumer", "summary": "Broken fridge",
                                              "request_id": uuid.uuid4().hex,
                                              "parties": [{"name": "Buyer"}, {"name": "Shop"}]}),
    "case.join": lambda w, r: _case_fields(w, lambda c: {"join_code": c["spare_code"]}),
    "case.add_party": lambda w, r: _case_fields(w, lambda c: {"case_id": c["id"], "name": f"Added by {r}"}),
    "cases.claim": nothing,
    "cases.watch": nothing,
    "cases.mine": nothing,
    "case.take": lambda w, r: _take_fields(w, r),
    "case.invite": lambda w, r: _case_fields(w, lambda c: {"case_id": c["id"], "account_id": w.id("agency")}),
    "chat.subscribe joint": lambda w, r: _case_fields(w, lambda c: {"case_id": c["id"], "room": "joint"}),
    "chat.subscribe caucus": lambda w, r: _case_fields(
        w, lambda c: {"case_id": c["id"], "room": f"caucus:{w.id('resident')}"}),
    "chat.unsubscribe": lambda w, r: _case_fields(w, lambda c: {"case_id": c["id"], "room": "joint"}),
    "chat.send joint": lambda w, r: _case_fields(
        w, lambda c: {"case_id": c["id"], "room": "joint", "client_msg_id": uuid.uuid4().hex, "body": "hello"}),
    "chat.send caucus": lambda w, r: _case_fields(
        w, lambda c: {"case_id": c["id"], "room": f"caucus:{w.id('resident')}", "client_msg_id": uuid.uuid4().hex,
                      "body": "in private"}),
    "agreement.propose": lambda w, r: _case_fields(w, lambda c: {"case_id": c["id"], "text": "B fixes the pipe."}),
    "agreement.sign": lambda w, r: _sign_fields(w),
    "case.close": lambda w, r: _case_fields(w, lambda c: {"case_id": c["id"], "outcome": "failed"}),
    "case.withdraw": lambda w, r: _case_fields(w, lambda c: {"case_id": c["id"]}),
    # cases followed up (issue 15)
    "case.events": lambda w, r: _case_fields(w, lambda c: {"case_id": c["id"]}),
    "case.extend": lambda w, r: _case_fields(w, lambda c: {"case_id": c["id"], "days": 3, "reason": "expert due"}),
    "case.feedback closed": once(lambda w: _closed_case_fields(w)),
}


# 3+N mediation (issue 15): the directory, a dispute referred, a case referred to `agency` (never invited)
async def _refer_fields(w: World, role: str) -> dict[str, Any]:
    """A dispute nobody can be offered (the responders' skills are medical and fire): a fresh one for each role
    allowed to refer it, assigned to `responder` for the responder; one shared for the others."""
    async def make(w: World) -> dict[str, Any]:
        inc = (await w.c["resident"].ok("help.request", request_id=uuid.uuid4().hex, category="dispute",
                                        **near(0)))["incident"]
        if role == "responder":
            await w.c["dispatcher"].ok("incident.assign", incident_id=inc["id"], responder_id=w.id("responder"))
        return {"incident_id": inc["id"], "summary": "Quarrel over parking", "other_parties": [{"name": "Driver"}]}
    if role in ("dispatcher", "admin", "responder"):
        return await make(w)
    return await _staff_target(w, role, make)


async def _referred(w: World, make: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    if "_referred" not in w.__dict__:
        filer = w.c["resident"]
        case = (await filer.ok("case.open", category="neighbour", summary="A tree over the fence",
                               other_parties=[{"name": "B"}]))["case"]
        b = await w.hl.resident()
        await b.ok("case.join", join_code=case["join_code"])
        med = w.c["mediator"]
        await med.ok("case.take", case_id=case["id"])
        await filer.ok("chat.send", case_id=case["id"], room="joint", client_msg_id="t1", body="the tree")
        await med.ok("case.close", case_id=case["id"], outcome="referred", referred_to={"agency_id": w.id("agency")})
        w.__dict__["_referred"] = {"id": case["id"]}
    return make(w.__dict__["_referred"])


WS_FIELDS.update({
    "agencies.list": nothing,
    "incident.refer": _refer_fields,
    "chat.subscribe joint referred": lambda w, r: _referred(w, lambda c: {"case_id": c["id"], "room": "joint"}),
    "chat.subscribe caucus referred": lambda w, r: _referred(
        w, lambda c: {"case_id": c["id"], "room": f"caucus:{w.id('resident')}"}),
    "chat.send joint referred": lambda w, r: _referred(
        w, lambda c: {"case_id": c["id"], "room": "joint", "client_msg_id": uuid.uuid4().hex, "body": "hello"}),
})
async def _closed_case_fields(w: World) -> dict[str, Any]:
    """A case of `resident`'s that `mediator` took and closed as failed: its filer is asked how it went."""
    cid = await w.fresh_case()
    await w.c["mediator"].ok("case.take", case_id=cid)
    await w.c["mediator"].ok("case.close", case_id=cid, outcome="failed")
    return {"case_id": cid, "score": 4}


async def _case_fields(w: World, make: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    return make(await w.case())


async def _take_fields(w: World, role: str) -> dict[str, Any]:
    """`mediator` takes a fresh case; anyone else tries the case `mediator` already holds."""
    if role == "mediator":
        return {"case_id": await w.fresh_case()}
    return {"case_id": (await w.case())["id"]}


async def _sign_fields(w: World) -> dict[str, Any]:
    c = await w.case()
    if "proposed" not in c:
        await w.c["mediator"].ok("agreement.propose", case_id=c["id"], text="B fixes the pipe by Friday.")
        c["proposed"] = True
    return {"case_id": c["id"]}


async def _coro(v: dict[str, Any]) -> dict[str, Any]:
    return v


async def _wrap(aw: Awaitable[str], key: str) -> dict[str, Any]:
    return {key: await aw}


async def _staff_target(w: World, role: str, make: Callable[[World], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    """A fresh target for each role allowed to change it; one shared real target for the others."""
    if role in ("dispatcher", "admin"):
        return await make(w)
    if "shared" not in w.__dict__:
        w.__dict__["shared"] = await make(w)
    made: dict[str, Any] = w.__dict__["shared"]
    return made


async def _assign_fields(w: World) -> dict[str, Any]:
    return {"incident_id": await w.escalated(), "responder_id": await w.spare_responder()}


async def _close_fields(w: World) -> dict[str, Any]:
    return {"incident_id": await w.escalated(), "disposition": "false_alarm"}


async def _link_fields(w: World) -> dict[str, Any]:
    """A resident's report attached to a call the admin took (the resident's help.request budget is 5)."""
    call = await w.c["admin"].ok("incident.create", request_id=uuid.uuid4().hex, category="other", channel="phone",
                                 **near(0))
    return {"incident_id": await w.escalated(), "duplicate_of": call["incident"]["id"]}


async def _locate_fields(w: World) -> dict[str, Any]:
    return {"incident_id": await w.escalated(), **near(0.01)}


def order(expected: dict[str, str]) -> list[str]:
    """Roles expecting a refusal first, so that a successful change cannot alter what the others see."""
    return sorted((r for r in ROLES if r != "none"), key=lambda r: expected[r] == "ok")


# offers outlive the whole row (the `offered` rows read while the offer is pending)
@pytest.mark.config(dispatch_offer_timeout_s=30)
@pytest.mark.parametrize("row", sorted(WS_FIELDS))
async def test_websocket_command_matrix(hl, row):
    expected = TABLE[row]
    command = row.split(" ")[0]
    w = await World(hl).build()
    got: dict[str, str] = {}
    for role in order(expected):
        fields = await WS_FIELDS[row](w, role)
        ans = await w.c[role].call(command, **fields)
        got[role] = "ok" if ans["type"] == "ok" else ans["code"]
    ws = await websockets.connect(hl.ws_url)
    await ws.send(json.dumps({"type": "hello", "token": "not-a-token"}))
    try:
        await ws.recv()
        got["none"] = "welcome"
    except websockets.ConnectionClosed as e:
        assert e.rcvd is not None, "closed without a close frame"
        got["none"] = str(e.rcvd.code)
    assert got == expected


def test_every_command_is_in_the_matrix():
    from handlers.commands import COMMANDS

    covered = {row.split(" ")[0] for row in TABLE}
    missing = [t for t in COMMANDS if t not in covered]
    assert not missing, f"commands missing from docs/authorization.md: {missing}"
    assert set(TABLE) <= set(CLERK_TABLE), f"rows missing from the clerk's table: {set(TABLE) - set(CLERK_TABLE)}"


async def _clerk_opened(w: World, role: str) -> dict[str, Any]:
    """A case the clerk opened for visitors, not yet taken by a mediator."""
    r = await w.c["clerk"].ok("case.open", category="property", summary="A shared wall",
                              parties=[{"name": "East"}, {"name": "West"}])
    return {"case_id": r["case"]["id"], "name": "North"}


CLERK_ONLY: dict[str, Fields] = {"case.add_party opened": _clerk_opened}


@pytest.mark.config(dispatch_offer_timeout_s=30)
async def test_the_clerk_column(hl):
    """The front desk, sent every command in one world (what it may do changes nothing the rows read;
    rows made `once` share one target, as the clerk is turned away by role before a target is read)."""
    w = await World(hl).build()
    got: dict[str, str] = {}
    for row, make in sorted({**WS_FIELDS, **CLERK_ONLY}.items()):
        ans = await w.c["clerk"].call(row.split(" ")[0], **await make(w, "clerk"))
        got[row] = "ok" if ans["type"] == "ok" else ans["code"]
    assert got == {row: CLERK_TABLE[row] for row in got}
    routes = {r for r in TABLE if r.split(" ")[0] in ("GET", "POST")}
    assert set(got) | routes == set(CLERK_TABLE)


@pytest.mark.config(dispatch_offer_timeout_s=30)
@pytest.mark.parametrize("route", [r for r in TABLE if r.split(" ")[0] in ("GET", "POST")])
async def test_the_clerk_column_of_routes(hl, route):
    w = await World(hl).build()
    assert str(await http_call(w, route, "clerk")) == CLERK_TABLE[route]


async def _settled_case(w: World) -> str:
    """The matrix's case with its agreement signed by both joined parties (resident and B): settled."""
    c = await w.case()
    if "settled" not in c:
        await w.c["mediator"].ok("agreement.propose", case_id=c["id"], text="B fixes the pipe by Friday.")
        await w.c["resident"].ok("agreement.sign", case_id=c["id"])
        await c["b"].ok("agreement.sign", case_id=c["id"])
        c["settled"] = True
    cid: str = c["id"]
    return cid


async def http_call(w: World, route: str, role: str) -> int:
    hl = w.hl
    token = None if role == "none" else await w.token(role)
    method, path = route.split(" ")[:2]
    if path.startswith("/api/admin/"):
        return await admin_call(w, method, path, token)
    if path.startswith("/api/cases/{id}"):
        path = path.replace("{id}", await _settled_case(w))
    if path == "/api/export/incidents/{id}":      # a closed incident: the export's
        if "closed" not in w.__dict__:
            iid = await w.assigned()
            await w.c["dispatcher"].ok("incident.close", incident_id=iid, disposition="resolved")
            w.__dict__["closed"] = iid
        path = path.replace("{id}", w.__dict__["closed"])
    if path == "/api/export/incidents":
        path += "?since=2020-01-01"
    if "{id}" in path:
        if "once" not in w.__dict__:
            w.__dict__["once"] = (await w.offered())[0] if route.endswith(" offered") else await w.assigned()
        path = path.replace("{id}", w.__dict__["once"])
    kw: dict[str, Any] = {}
    if path == "/api/places":
        path += "?q=park"
    if path == "/api/help":
        kw["json"] = {"request_id": uuid.uuid4().hex, "category": "other", **near(0)}
    status, _ = await http(method, hl.base + path, token=token, **kw)
    return status


@pytest.mark.config(dispatch_offer_timeout_s=30)
@pytest.mark.parametrize("route", [r for r in TABLE if r.split(" ")[0] in ("GET", "POST")])
async def test_http_route_matrix(hl, route):
    expected = TABLE[route]
    w = await World(hl).build()
    got = {role: str(await http_call(w, route, role)) for role in ROLES}
    assert got == expected


# the admin console (issue 21): every /api/admin/ route acts on one spare staff account of the world
ADMIN_BODIES: dict[str, Any] = {
    "/api/admin/accounts/{id}": {"name": "Edited by an admin"},
    "/api/admin/accounts/{id}/sessions/end": {},
}


async def admin_call(w: World, method: str, path: str, token: str | None) -> int:
    if "admin_target" not in w.__dict__:
        name = "target-" + uuid.uuid4().hex[:6]
        w.__dict__["admin_target"] = await w.hl.add_user(name, "mediator")
    kw: dict[str, Any] = {}
    if method == "POST":
        kw["json"] = ({"username": "made-" + uuid.uuid4().hex[:6], "role": "clerk"}
                      if path == "/api/admin/accounts" else ADMIN_BODIES.get(path))
    status, _ = await http(method, w.hl.base + path.replace("{id}", w.__dict__["admin_target"]), token=token, **kw)
    return status
# ---------------------------------------------------------------- dispatchers limited to an area (issue 14)

async def _grids(w: World) -> dict[str, Any]:
    """The test city's grids (testkit/squares.py): the incidents of the world lie in G1."""
    await insert_grids(w.hl.database_url)
    return {"grids": ["D1"]}


def read_area_table() -> dict[str, tuple[str, str]]:
    """The table `| command or route | in their area | outside it |`."""
    rows: dict[str, tuple[str, str]] = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`"):
            rows[cells[0].replace("`", "")] = (cells[1], cells[2])
    return rows


AREA_TABLE = read_area_table()
AREA_FIELDS: dict[str, Callable[[World], Awaitable[dict[str, Any]]]] = {
    "queue.watch": lambda w: _coro({}),
    "incident.assign": _assign_fields,
    "incident.close": _close_fields,
    "incident.locate": _locate_fields,
    "incident.ack": lambda w: _wrap(w.escalated(), "incident_id"),
    "incident.link": _link_fields,
    "incident.events": lambda w: _wrap(w.escalated(), "incident_id"),
    "incident.create": lambda w: _coro({"request_id": uuid.uuid4().hex, "category": "other", "channel": "phone",
                                        **near(0)}),
    "incident.refer": lambda w: _refer_fields(w, "dispatcher"),
}


async def _limited(w: World, code: str) -> tuple[Client, str]:
    name = f"area-{code}-{uuid.uuid4().hex[:6]}"
    did = await w.hl.add_user(name, "dispatcher", name=name)
    await join(w.hl.database_url, did, code, area_limited=True)
    token = await w.hl.login(name)
    return await w.hl.connect(token), token


def test_every_area_row_is_sent():
    assert set(AREA_TABLE) == set(AREA_FIELDS) | {"GET /api/incidents/{id}"}


@pytest.mark.parametrize("row", sorted(AREA_TABLE))
async def test_area_limited_dispatcher_matrix(hl, row):
    w = await World(hl).build()
    await _grids(w)
    got = []
    for code in ("G1", "G3"):            # the world's incidents lie in G1
        c, token = await _limited(w, code)
        if row.startswith("GET "):
            iid = await w.escalated()
            got.append(str((await http("GET", f"{hl.base}/api/incidents/{iid}", token=token))[0]))
            continue
        ans = await c.call(row, **await AREA_FIELDS[row](w))
        got.append("ok" if ans["type"] == "ok" else ans["code"])
    assert tuple(got) == AREA_TABLE[row]
