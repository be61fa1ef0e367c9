"""What texts say: one catalogue (incident texts in two languages, mediation's bilingual texts)
and the GSM-7 / UCS-2 segment arithmetic that keeps incident texts to one segment. Pure code.

Incident texts (TEXTS) are rendered in the recipient's language and fitted into one segment
(160 GSM-7 characters, or 70 UCS-2 code units), shortening a responder's name if need be.
Mediation's texts (CASE_TEXTS) carry both languages in one message, as before, and may run to
several segments (an agreement's text); dispatch and mediation name them through
infra.texts.CaseText and the sms package renders them when they are queued.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from infra.formats import seal
from infra.texts import CaseText, IncidentText, Template

MAX_BODY = 1600          # Twilio's limit for one message (several segments)
MAX_AGREEMENT_SMS = 1200

_GSM7 = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
            "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
_GSM7_EXT = set("^{}\\[~]|€\f")

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "help_ok": "Helpline {ref}: we got your message. A dispatcher will call or text you. "
                   "Reply with your address. SAFE cancels.",
        "help_open": "Helpline {ref}: your request is still open; we passed on your message. SAFE cancels.",
        "safe_ok": "Helpline {ref}: cancelled. Glad you are safe.",
        "safe_none": "Helpline: you have no open request.",
        "note_ok": "Helpline {ref}: message passed on.",
        "usage": "Helpline: text HELP and what happened to ask for help. SAFE cancels. STOP ends texts.",
        "start_ok": "Helpline: texts are on again. Text HELP and what happened to ask for help.",
        "error": "Helpline: sorry, something went wrong. Please try again, or call {emergency}.",
        "otp": "Helpline code: {code}. Valid 5 minutes. Do not share it.",
        "limited": "Helpline: too many requests from this phone. If you are in danger, call {emergency}.",
        "searching": "Helpline {ref}: we are contacting a helper near you.",
        "escalated": "Helpline {ref}: no helper nearby has taken it yet; it now waits for a dispatcher. "
                     "Keep your phone on.",
        "assigned": "Helpline {ref}: {name} is coming to help you.",
        "en_route": "Helpline {ref}: {name} is on the way.",
        "on_scene": "Helpline {ref}: {name} has arrived.",
        "resolved": "Helpline {ref}: closed. Stay safe.",
        "cancelled": "Helpline {ref}: your request is cancelled.",
        "linked": "Helpline {ref}: your call is now part of {main}, which is being handled.",
        "helper": "a helper",
        "staff_help": "Helpline: this phone is a staff account. Use your app or call dispatch; "
                      "in danger call {emergency}.",
        "safe_app": "Helpline {ref}: this request was made in the app; cancel it there. We told the dispatcher.",
        # a responder's offer and their answers by SMS (issue 12; docs/sms.md)
        "offer": "Helpline offer {ref}: {category}, {distance}{place}. Reply 1 to accept, 2 to decline.",
        "offer_accepted": "Helpline {ref}: it is yours. Reply OTW when on the way, ARR on arrival, DONE when done.",
        "offer_declined": "Helpline {ref}: declined. Thank you.",
        "offer_ended": "Helpline {ref}: this offer has ended. Nothing changed.",
        "no_offer": "Helpline: no offer is waiting for you.",
        "progress_en_route": "Helpline {ref}: on the way noted. Reply ARR on arrival.",
        "progress_on_scene": "Helpline {ref}: arrival noted. Reply DONE when done.",
        "progress_resolved": "Helpline {ref}: closed. Thank you.",
        "progress_skip": "Helpline {ref}: not yet. First reply {word}.",
        "progress_none": "Helpline: you have no assigned incident.",
        "duty_on": "Helpline: you are on duty at your last position. OFF ends duty.",
        "duty_on_nopos": "Helpline: no known position. Start duty once in the app, then ON works by SMS.",
        "duty_on_grid": "Helpline: you are on duty for your grid (no position yet). OFF ends duty.",
        "duty_off": "Helpline: you are off duty. ON starts duty.",
        "duty_off_busy": "Helpline: finish your incident first (DONE), or ask a dispatcher.",
        "duty_off_none": "Helpline: you are not on duty.",
    },
    "zh": {
        "help_ok": "求助{ref}已收到，调度员会联系您。请回复您的地址。回复“平安”取消。",
        "help_open": "求助{ref}仍在处理中，您的消息已转达。回复“平安”取消。",
        "safe_ok": "求助{ref}已取消。很高兴您平安。",
        "safe_none": "您目前没有进行中的求助。",
        "note_ok": "求助{ref}：消息已转达。",
        "usage": "求助热线：发送“求助”加情况说明即可求助；“平安”取消；“退订”停止短信。",
        "start_ok": "求助热线短信已恢复。发送“求助”加情况说明即可求助。",
        "error": "求助热线：系统出错，请重试或拨打{emergency}。",
        "otp": "求助热线验证码：{code}，5分钟内有效，请勿告诉他人。",
        "limited": "求助过于频繁。如有危险请拨打{emergency}。",
        "searching": "求助{ref}：正在联系您附近的救助人员。",
        "escalated": "求助{ref}：附近暂无救助人员接单，已转给调度员，请保持手机畅通。",
        "assigned": "求助{ref}：{name}将前来帮助您。",
        "en_route": "求助{ref}：{name}正在赶来。",
        "on_scene": "求助{ref}：{name}已到达。",
        "resolved": "求助{ref}：已处理完毕，请注意安全。",
        "cancelled": "求助{ref}：您的求助已取消。",
        "linked": "求助{ref}：您的来电已并入{main}，正在处理中。",
        "helper": "救助人员",
        "staff_help": "求助热线：此号码属于工作人员账号，请用工作应用或联系调度；如有危险请拨打{emergency}。",
        "safe_app": "求助{ref}是在应用中发起的，请在应用中取消。已告知调度员。",
        "offer": "派单{ref}：{category}，{distance}{place}。回复1接受，2拒绝。",
        "offer_accepted": "{ref}已派给您。出发回复“出发”，到达回复“到达”，完成回复“完成”。",
        "offer_declined": "{ref}：已拒绝，谢谢。",
        "offer_ended": "{ref}：此派单已结束，未作任何更改。",
        "no_offer": "求助热线：目前没有给您的派单。",
        "progress_en_route": "{ref}：已记录出发。到达后回复“到达”。",
        "progress_on_scene": "{ref}：已记录到达。完成后回复“完成”。",
        "progress_resolved": "{ref}：已完成，谢谢。",
        "progress_skip": "{ref}：还不行，请先回复“{word}”。",
        "progress_none": "求助热线：您目前没有指派的事件。",
        "duty_on": "求助热线：已按您最后的位置上班。回复“下班”结束。",
        "duty_on_nopos": "求助热线：没有您的位置。请先在应用中上班一次。",
        "duty_on_grid": "求助热线：已在您的网格上班（暂无位置）。回复“下班”结束。",
        "duty_off": "求助热线：您已下班。回复“上班”开始。",
        "duty_off_busy": "求助热线：请先完成当前事件（回复“完成”）或联系调度员。",
        "duty_off_none": "求助热线：您目前不在班。",
    },
}
# the pieces of an offer (its text and its call) and what a call says, by language
OFFER_WORDS: dict[str, dict[str, str]] = {
    "en": {
        "no_position": "no position",
        "at": "at {lat},{lon}",
        "km": "{km} km away, ",
        "cat_medical": "medical", "cat_fire": "fire", "cat_police": "police", "cat_dispute": "dispute",
        "cat_other": "other",
        "voice_offer": "Helpline. An offer: {category}, {distance}reference {ref_spoken}. "
                       "Press 1 to accept. Press 2 to decline.",
        "voice_none": "No answer. The offer stays open until its deadline. Goodbye.",
        "voice_accepted": "It is yours. Open the app, or text O T W when on the way. Goodbye.",
        "voice_declined": "Declined. Thank you. Goodbye.",
        "voice_ended": "This offer has ended. Nothing changed. Goodbye.",
        "voice_unknown": "Not understood. The offer stays open until its deadline. Goodbye.",
    },
    "zh": {
        "no_position": "位置不明",
        "at": "位置{lat},{lon}",
        "km": "距您{km}公里，",
        "cat_medical": "医疗", "cat_fire": "火警", "cat_police": "治安", "cat_dispute": "纠纷", "cat_other": "其他",
        "voice_offer": "求助热线派单：{category}，{distance}编号{ref_spoken}。接受请按1，拒绝请按2。",
        "voice_none": "没有收到按键。派单在截止前仍然有效。再见。",
        "voice_accepted": "已派给您。请打开应用，或出发时回复短信“出发”。再见。",
        "voice_declined": "已拒绝，谢谢。再见。",
        "voice_ended": "此派单已结束，未作任何更改。再见。",
        "voice_unknown": "没有听懂。派单在截止前仍然有效。再见。",
    },
}
# incident status → what the reporter is told; queued and offered read the same
PHASES = {"queued": "searching", "offered": "searching", "escalated": "escalated", "assigned": "assigned",
          "en_route": "en_route", "on_scene": "on_scene", "resolved": "resolved", "cancelled": "cancelled"}


def is_gsm7(text: str) -> bool:
    return all(ch in _GSM7 or ch in _GSM7_EXT for ch in text)


def segment_limit(text: str) -> int:
    """Characters in one segment: 160 in GSM-7 (extension characters count twice), else 70 (UCS-2)."""
    return 160 if is_gsm7(text) else 70


def sms_length(text: str) -> int:
    if is_gsm7(text):
        return sum(2 if ch in _GSM7_EXT else 1 for ch in text)
    return sum(2 if ord(ch) > 0xFFFF else 1 for ch in text)   # UTF-16 code units


def one_segment(text: str) -> bool:
    return sms_length(text) <= segment_limit(text)


def render(lang: str, key: str, **fields: Any) -> str:
    """A text in the language, fitted to one segment by shortening the responder's name if need be."""
    table = TEXTS.get(lang, TEXTS["en"])
    tpl = table[key]
    name = str(fields.get("name") or table["helper"])
    text = tpl.format(**{**fields, "name": name})
    while not one_segment(text) and len(name) > 1:
        name = name[:-1]
        text = tpl.format(**{**fields, "name": name})
    while not one_segment(text):
        text = text[:-1]
    return text


# what a responder replies for each step (progress_skip names the next one in their language)
STEP_WORDS = {"en": {"en_route": "OTW", "on_scene": "ARR", "resolved": "DONE"},
              "zh": {"en_route": "出发", "on_scene": "到达", "resolved": "完成"}}
VOICE_LANGS = {"en": "en-US", "zh": "cmn-CN"}     # TwiML <Say language>


def offer_parts(lang: str, inc: Mapping[str, Any], distance_km: float | None) -> dict[str, str]:
    """The fields of an offer's text and call: category, distance, place (or "no position")."""
    table = OFFER_WORDS.get(lang, OFFER_WORDS["en"])
    category = table.get(f"cat_{inc.get('category')}", str(inc.get("category") or ""))
    distance = table["km"].format(km=f"{distance_km:.1f}") if distance_km is not None else ""
    lat, lon = inc.get("lat"), inc.get("lon")
    place = (table["at"].format(lat=f"{lat:.5f}", lon=f"{lon:.5f}") if lat is not None and lon is not None
             else table["no_position"])
    return {"ref": str(inc.get("ref_no") or ""), "category": category, "distance": distance, "place": place}


def render_offer(lang: str, inc: Mapping[str, Any], distance_km: float | None) -> str:
    """An offer's text: one segment where it fits (the place is dropped before the way to answer)."""
    parts = offer_parts(lang, inc, distance_km)
    text = render(lang, "offer", **parts)
    if not one_segment(text):
        text = render(lang, "offer", **{**parts, "place": parts["place"].split(",")[0]})
    return text


def offer_twiml(lang: str, inc: Mapping[str, Any], distance_km: float | None, action: str) -> str:
    """An offer's call: the offer read out in the responder's language, one key pressed (1 or 2) posted to
    `action`; no key: the call ends and the offer is left to its deadline."""
    from twilio.twiml.voice_response import VoiceResponse

    table = OFFER_WORDS.get(lang, OFFER_WORDS["en"])
    parts = offer_parts(lang, inc, distance_km)
    spoken = " ".join(parts["ref"].replace("-", ""))     # "H 4 8 2 1": read out character by character
    say = table["voice_offer"].format(**{**parts, "ref_spoken": spoken})
    r = VoiceResponse()
    g = r.gather(num_digits=1, action=action, method="POST", timeout=8)
    for _ in range(2):       # said twice: the first time may be lost while the phone comes to the ear
        g.say(say, language=VOICE_LANGS.get(lang, "en-US"))
    r.say(table["voice_none"], language=VOICE_LANGS.get(lang, "en-US"))
    return str(r)


def voice_reply(lang: str, key: str) -> str:
    """TwiML for the answer to a key pressed."""
    from twilio.twiml.voice_response import VoiceResponse

    r = VoiceResponse()
    r.say(OFFER_WORDS.get(lang, OFFER_WORDS["en"])[key], language=VOICE_LANGS.get(lang, "en-US"))
    return str(r)


def detect_lang(text: str, fallback: str) -> str:
    if any("\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf" for ch in text):
        return "zh"
    if any(ch.isascii() and ch.isalpha() for ch in text):
        return "en"
    return fallback


def default_lang(phone: str) -> str:
    return "zh" if phone.startswith(("+86", "+852", "+853", "+886")) else "en"


# ------------------------------------------------------------------ mediation (both languages in one text)

CASE_STATUS_WORDS = {"settled": "settled 已和解", "failed": "closed without agreement 调解未成",
                     "referred": "referred on 已转介", "withdrawn": "withdrawn 已撤回"}


# Free text (a filer's name, a chat message, an agreement) reaches a phone only inside these templates:
# a fixed prefix naming the service and the case, the text labelled as someone's words, links and
# phone numbers cut out, and a length cap. The service passes free text only from verified senders
# (mediation/service.py); from anyone else the fields arrive empty and the neutral wording is used.
PREFIX = "Helpline mediation {ref}"
MAX_NAME_SMS = 32
MAX_CHAT_SMS = 300
_LINK = re.compile(r"(?i)\b(?:[a-z][a-z0-9+.-]*://\S*|www\.\S*|(?:[a-z0-9-]+\.)+(?:[a-z]{2,24})(?:/\S*)?)")
_PHONE_RUN = re.compile(r"\+?\d[\d\s().-]{5,}\d")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def _no_phone(m: re.Match[str]) -> str:
    return "[number removed]" if sum(ch.isdigit() for ch in m.group(0)) >= 7 else m.group(0)


def safe_fragment(text: str, cap: int, one_line: bool = True, numbers: bool = False) -> str:
    """Someone's words made fit for a text from the city: no links, no phone numbers (7+ digits), capped."""
    t = _CONTROL.sub("", text)
    t = _LINK.sub("[link removed]", t)
    if not numbers:
        t = _PHONE_RUN.sub(_no_phone, t)
    t = re.sub(r"\s+", " ", t) if one_line else re.sub(r"[ \t]+", " ", t)
    t = t.strip()
    return t if len(t) <= cap else t[:cap - 1].rstrip() + "…"


def _prefix(ref: str) -> str:
    return PREFIX.format(ref=ref)


def _invitation(ref: str, category: str, filer: str, code: str, public_url: str) -> str:
    name = safe_fragment(filer, MAX_NAME_SMS)
    who_zh, who_en = (f"居民“{name}”", f'A resident, "{name}",') if name else ("一位居民", "A resident")
    return (f"{_prefix(ref)}: {who_zh}申请了一宗{category}调解并列您为当事人。回复 {code} 加入。"
            f" {who_en} asks you to take part in mediation ({category}). Reply {code} to join"
            + (f", or enter it at {public_url}/mediate" if public_url else "") + ". STOP ends texts.")


def _visit(ref: str, category: str, code: str, public_url: str) -> str:
    """A case a mediator or clerk opened for people at the counter: no one's own words in it."""
    return (f"{_prefix(ref)}: 调解中心为您登记了一宗{category}调解，您是当事人。回复 {code} 加入。"
            f" The mediation centre has registered a mediation case ({category}) with you as a party."
            f" Reply {code} to join" + (f", or enter it at {public_url}/mediate" if public_url else "")
            + ". STOP ends texts.")


def _proposal(ref: str, text: str, code: str, public_url: str) -> str:
    body = safe_fragment(text, MAX_AGREEMENT_SMS, one_line=False, numbers=True)   # a mediator's terms
    shown = body if len(text) <= MAX_AGREEMENT_SMS else body + (
        f" (全文 full text: {public_url}/mediate)" if public_url else "")
    return (f"{_prefix(ref)}: 调解协议 Proposed agreement:\n{shown}\n"
            f"同意请回复 签字 {code} / Reply SIGN {code} to sign. The code is yours alone.")


def _chat(ref: str, sender: str, body: str, public_url: str = "") -> str:
    if not body.strip():     # an unverified sender: their words stay in the app
        where = f" at {public_url}/mediate" if public_url else " in the app"
        return f"{_prefix(ref)}: 新消息请在应用内查看。 A new message in your case; read it{where}."
    who = safe_fragment(sender, MAX_NAME_SMS) or "当事人 Party"    # a party without a name
    return f"{_prefix(ref)} · {who}: {safe_fragment(body, MAX_CHAT_SMS)}"


CASE_TEXTS: dict[CaseText, Callable[..., str]] = {
    CaseText.INVITATION: _invitation,
    CaseText.VISIT: _visit,
    CaseText.TAKEN: lambda ref, mediator: f"{_prefix(ref)}: 调解员 {safe_fragment(mediator, MAX_NAME_SMS)} 已受理。"
                                          f" Mediator {safe_fragment(mediator, MAX_NAME_SMS)} has taken the case.",
    CaseText.PROPOSAL: _proposal,
    CaseText.SETTLED: lambda ref, sha256:
        f"{_prefix(ref)}: 各方均已签字，调解成功。协议参考号 {seal(sha256)}。"
        f" All parties signed: settled. Agreement reference {seal(sha256)}.",
    CaseText.CLOSED: lambda ref, status:
        f"{_prefix(ref)}: 案件{CASE_STATUS_WORDS.get(status, status)}. The case is {status}.",
    CaseText.CHAT: _chat,
    CaseText.FEEDBACK: lambda ref:
        f"{_prefix(ref)}: 案件已结束。您对本次调解满意吗？请回复 1-5（1 很不满意，5 很满意）。"
        f" The case has ended. How satisfied are you with the mediation? Reply 1-5 (1 not at all, 5 very).",
}


def render_case(t: Template) -> str:
    if isinstance(t.key, IncidentText):
        return INCIDENT_TEXTS[t.key](**t.fields)
    return CASE_TEXTS[t.key](**t.fields)


# ------------------------------------------------------------------ dispatch's texts to staff (both languages)

CATEGORY_WORDS = {"medical": ("medical", "医疗急救"), "fire": ("fire", "火警"), "police": ("police", "治安报警"),
                  "dispute": ("dispute", "纠纷"), "other": ("other", "其他")}


def _supervisor(ref: str, category: str, minutes: str, more: str = "0", public_url: str = "") -> str:
    """An escalated incident no dispatcher took (dispatch/alarm.py): its reference, category and how long it
    has waited, how many more wait, where to act. Never the resident's number or words."""
    en, zh = CATEGORY_WORDS.get(category, (category, category))
    n = int(more) if more.isdigit() else 0
    where = f"{public_url}/dispatch" if public_url else "the dispatch console"
    return (f"Helpline {ref}: {en} incident escalated {minutes} min ago, no dispatcher has taken it"
            + (f" (+{n} more waiting)" if n else "") + f". Open {where}. "
            f"求助热线{ref}：{zh}求助已升级{minutes}分钟，尚无调度员接手" + (f"（另有{n}起待处理）" if n else "")
            + "。请打开调度台。")


INCIDENT_TEXTS: dict[IncidentText, Callable[..., str]] = {
    IncidentText.SUPERVISOR: _supervisor,
}


# replies to a party's inbound text (the webhook answers with them)
CASE_REPLIES: dict[str, str] = {
    "joined": "[{ref}] 您已加入调解。直接回复即发言给所有参与方。 You have joined. "
              "Your replies go to everyone in the case; theirs come to you here.",
    "join_failed": "未能加入 Could not join: {why}",
    "sign_unknown": "签字码不对 That sign code matches no agreement of yours. Reply SIGN and the 6 digits we sent.",
    "sign_failed": "未能签字 Not signed: {why}",
    "signed_settled": "[{ref}] 已签字 Signed. 已和解 Settled.",
    "signed_waiting": "[{ref}] 已签字 Signed. 等待其他当事人 Waiting for the others.",
    "send_failed": "未能发送 Not delivered: {why}",
    "delivered": "已送达 Delivered (#{seq}).",
    "feedback_thanks": "[{ref}] 谢谢您的评价 Thank you: {score}/5.",
    "feedback_already": "[{ref}] 您已评价过，以第一次为准 You have already answered ({score}/5);"
                        " the first answer stands.",
}


def case_reply(key: str, **fields: Any) -> str:
    return CASE_REPLIES[key].format(**fields)


def as_text(body: str | Template) -> str:
    """What goes into the outbox: finished wording as it is, a Template rendered."""
    return body if isinstance(body, str) else render_case(body)

