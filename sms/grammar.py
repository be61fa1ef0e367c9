"""Which SMS word wins: the keyword grammar of inbound texts, as pure code.

An inbound text is normalised (NFKC: full-width letters and digits read as ASCII; case folded)
and tried against RULES from top to bottom; the first rule that matches decides its Kind:

    precedence  kind      words                                     how it must appear
    1           STOP      STOP STOPALL UNSUBSCRIBE CANCEL END QUIT  the whole message (as Twilio
                          退订 取消订阅                                reads opt-outs)
    2           START     START UNSTOP                              the whole message
    3r          ACCEPT    1 Y YES 是 接受                             the whole message; responders only
    4r          DECLINE   2 N NO 否 拒绝                              the whole message; responders only
    5r          EN_ROUTE  OTW 出发                                    the whole message; responders only
    6r          ON_SCENE  ARR 到达                                    the whole message; responders only
    7r          RESOLVED  DONE 完成                                   the whole message; responders only
    8r          DUTY_ON   ON 上班                                     the whole message; responders only
    9r          DUTY_OFF  OFF 下班                                    the whole message; responders only
    10          YES       YES                                       the whole message
    10s         SCORE     1 2 3 4 5                                 the whole message (a satisfaction answer)
    11          HELP      HELP SOS 求助 救命                          first word, then the text
    12          SAFE      SAFE 平安 取消                              first word, then the text
    13          SIGN      SIGN 签字 签名 签署 + 6 digits               the whole message
    14          JOIN      [JOIN | 加入] + an 8/10-char code          the whole message
    15          OTHER     anything else                             (a note, or a chat message)

Why this order: opt-outs first, because a carrier acts on them whatever we do, so we must
never read STOP as anything else. SAFE after HELP, so that "HELP" is never a cancellation.
An English keyword must end at a non-letter ("HELPFUL", "SAFETY" are no keywords); a Chinese
one may run into the text ("救命啊"). SIGN before JOIN: the shapes never overlap (a sign code
has six digits after a word; a join code normalises to 8 or 10 letters and digits), so the order
is for the reader. JOIN and SIGN are *candidates*: the mediation side decides whether the code
exists; if not, the text is handled as OTHER.

Words that depend on who sends them (the rows marked r: a responder answering an offer, moving
their incident on, going on and off duty by SMS; issue 12) are Rules with `roles={"responder"}`,
placed below the opt-outs (a carrier acts on those whatever we do) and above the rows they must
win over (above YES for `YES`). The sender's role is that of the account the number belongs to;
`parse(body, role=...)` skips rules of other roles, so from any other number (a resident, staff of
another role, a stranger) `1` or `YES` or `ON` read as they always did: YES an opt-in, the rest a
note or a chat message. Whole messages only: "1 more thing" from a responder is no acceptance.

SCORE (10s, issue 15) is a *candidate* like JOIN and SIGN: a bare digit 1-5 answers the satisfaction
question of a closed case while one asked by SMS of that phone's party is pending
(handlers/sms_routing.py); otherwise the text reads as OTHER (a note, or a chat message). It sits
below the responder rows, so from a responder's number `1` and `2` stay ACCEPT and DECLINE: a
responder's pending offer always wins (and a responder is never a party of a case).
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    STOP = "stop"
    START = "start"
    YES = "yes"
    HELP = "help"
    SAFE = "safe"
    SIGN = "sign"
    JOIN = "join"
    OTHER = "other"
    SCORE = "score"       # a bare 1-5: a satisfaction answer, if one is pending (else OTHER)
    # a responder's words (roles={"responder"})
    ACCEPT = "accept"
    DECLINE = "decline"
    EN_ROUTE = "en_route"
    ON_SCENE = "on_scene"
    RESOLVED = "resolved"
    DUTY_ON = "duty_on"
    DUTY_OFF = "duty_off"


RESPONDER = frozenset({"responder"})
RESPONDER_KINDS = frozenset({Kind.ACCEPT, Kind.DECLINE, Kind.EN_ROUTE, Kind.ON_SCENE, Kind.RESOLVED,
                             Kind.DUTY_ON, Kind.DUTY_OFF})


class Form(StrEnum):
    WHOLE = "whole"       # the word is the whole message (trimmed of spaces and punctuation)
    FIRST = "first"       # the word starts the message; what follows is the text
    PATTERN = "pattern"   # a regular expression over the whole message; group 1 is the code


@dataclass(frozen=True)
class Rule:
    kind: Kind
    form: Form
    words: tuple[str, ...] = ()
    pattern: re.Pattern[str] | None = None
    roles: frozenset[str] | None = None      # None: whoever sends it


@dataclass(frozen=True)
class Parsed:
    kind: str        # a Kind
    text: str        # what follows the keyword (HELP, SAFE), or the whole message (SIGN, JOIN, OTHER)
    code: str = ""   # the code of SIGN and JOIN


JOIN_CODE_LENS = (8, 10)    # what a join code normalises to (mediation makes them; 10 since issue 20)

SIGN = re.compile(r"^(?:SIGN|签字|签名|签署)\s*[:：]?\s*(\d{6})$", re.IGNORECASE)
JOIN = re.compile(r"^(?:JOIN|加入)?\s*[:：]?\s*([A-Za-z0-9][A-Za-z0-9 -]{6,14}[A-Za-z0-9])$", re.IGNORECASE)

# the one table of words, in both languages (see the module docstring for why this order)
RULES: tuple[Rule, ...] = (
    Rule(Kind.STOP, Form.WHOLE, ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "退订", "取消订阅")),
    Rule(Kind.START, Form.WHOLE, ("START", "UNSTOP")),
    Rule(Kind.ACCEPT, Form.WHOLE, ("1", "Y", "YES", "是", "接受"), roles=RESPONDER),
    Rule(Kind.DECLINE, Form.WHOLE, ("2", "N", "NO", "否", "拒绝"), roles=RESPONDER),
    Rule(Kind.EN_ROUTE, Form.WHOLE, ("OTW", "出发"), roles=RESPONDER),
    Rule(Kind.ON_SCENE, Form.WHOLE, ("ARR", "到达"), roles=RESPONDER),
    Rule(Kind.RESOLVED, Form.WHOLE, ("DONE", "完成"), roles=RESPONDER),
    Rule(Kind.DUTY_ON, Form.WHOLE, ("ON", "上班"), roles=RESPONDER),
    Rule(Kind.DUTY_OFF, Form.WHOLE, ("OFF", "下班"), roles=RESPONDER),
    Rule(Kind.YES, Form.WHOLE, ("YES",)),
    Rule(Kind.SCORE, Form.WHOLE, ("1", "2", "3", "4", "5")),
    Rule(Kind.HELP, Form.FIRST, ("HELP", "SOS", "求助", "救命")),
    Rule(Kind.SAFE, Form.FIRST, ("SAFE", "平安", "取消")),
    Rule(Kind.SIGN, Form.PATTERN, pattern=SIGN),
    Rule(Kind.JOIN, Form.PATTERN, pattern=JOIN),
)

_TRIM = " \t\r\n\u3000.,;:!?-—~·。，；：！？、"


def parse(body: str, role: str | None = None) -> Parsed:
    """The Kind of an inbound text: the first rule of RULES (for this sender's role) that matches."""
    t = unicodedata.normalize("NFKC", body).strip()
    whole = t.strip(_TRIM).upper()
    orig = body.strip()
    for rule in RULES:
        if rule.roles is not None and role not in rule.roles:
            continue
        got = _MATCHERS[rule.form](rule, t, whole, orig)
        if got is not None:
            return got
    return Parsed(Kind.OTHER, orig)


def _whole(rule: Rule, t: str, whole: str, orig: str) -> Parsed | None:
    if whole not in rule.words:
        return None
    return Parsed(rule.kind, orig, whole) if rule.kind is Kind.SCORE else Parsed(rule.kind, "")


def _first(rule: Rule, t: str, whole: str, orig: str) -> Parsed | None:
    for kw in rule.words:
        if t[:len(kw)].upper() != kw:
            continue
        cut = _prefix_len(orig, kw)
        nxt = unicodedata.normalize("NFKC", orig[cut:])[:1]
        if kw.isascii() and nxt.isascii() and nxt.isalnum():
            continue   # HELPFUL, SAFETY: not a keyword
        return Parsed(rule.kind, orig[cut:].lstrip(_TRIM).rstrip())   # the text as written
    return None


def _pattern(rule: Rule, t: str, whole: str, orig: str) -> Parsed | None:
    assert rule.pattern is not None
    m = rule.pattern.match(orig)
    if m is None:
        return None
    if rule.kind is Kind.JOIN and not is_join_code(normalise_code(m.group(1))):
        return None
    return Parsed(rule.kind, orig, m.group(1))


_MATCHERS: dict[Form, Callable[[Rule, str, str, str], Parsed | None]] = {
    Form.WHOLE: _whole, Form.FIRST: _first, Form.PATTERN: _pattern}


def _prefix_len(orig: str, kw: str) -> int:
    """How many characters of the original text make up the (NFKC-normalised) keyword."""
    for k in range(1, len(orig) + 1):
        if unicodedata.normalize("NFKC", orig[:k]).upper() == kw:
            return k
    return len(kw)


def is_join_code(code: str) -> bool:
    """8 characters (codes before issue 20), or 10 with a digit among them: ten letters are a word."""
    return len(code) == 8 or (len(code) == 10 and any(ch.isdigit() for ch in code))


def normalise_code(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


# the first group that matches names the category of an SMS report; nothing → "other"
CATEGORY_WORDS: list[tuple[str, re.Pattern[str]]] = [
    ("fire", re.compile(r"\b(fire|smoke|burning|flames?)\b|火|烟|燃|烧", re.IGNORECASE)),
    ("medical", re.compile(r"\b(injur\w*|hurt|bleed\w*|blood|fell|fall\w*|heart|chest|breath\w*|sick|"
                           r"unconscious|ambulance|stroke|pain|faint\w*)\b|受伤|流血|摔|心脏|胸|呼吸|晕|昏|病|救护车|疼|痛",
                           re.IGNORECASE)),
    ("police", re.compile(r"\b(police|thief|thieves|robb\w*|stole\w*|steal\w*|burglar\w*|attack\w*|assault\w*|"
                          r"violen\w*|gun|knife)\b|警察|报警|小偷|抢|偷|打人|暴力|刀", re.IGNORECASE)),
    ("dispute", re.compile(r"\b(dispute|argu\w*|quarrel\w*|neighbou?r\w*)\b|纠纷|吵架|争吵|邻居", re.IGNORECASE)),
]


def guess_category(text: str) -> str:
    t = unicodedata.normalize("NFKC", text)
    for category, pattern in CATEGORY_WORDS:
        if pattern.search(t):
            return category
    return "other"
