"""SMS without I/O: keywords, categories, segment fitting, languages, the rebased Twilio client."""
from __future__ import annotations

import pytest
from twilio.request_validator import RequestValidator

from handlers.sms_sim import replies, signature
from infra import config as config_mod
from infra.formats import mask_phone
from sms import gateway, otp
from sms import grammar as h
from sms import texts as sms
from testkit.stack import free_port


@pytest.mark.parametrize("body,kind,text", [
    ("HELP fell down", "help", "fell down"),
    ("help", "help", ""),
    ("  Sos: fire!", "help", "fire!"),
    ("ＨＥＬＰ", "help", ""),
    ("ＨＥＬＰ　ｆｉｒｅ", "help", "ｆｉｒｅ"),              # the text is kept as written
    ("ｈｅｌｐ me", "help", "me"),
    ("求助 我摔倒了，腿很疼", "help", "我摔倒了，腿很疼"),
    ("救命！", "help", ""),
    ("救命啊", "help", "啊"),
    ("Helpful people", "other", "Helpful people"),
    ("SAFE", "safe", ""),
    ("safe now", "safe", "now"),
    ("平安", "safe", ""),
    ("取消", "safe", ""),
    ("SAFETY first", "other", "SAFETY first"),
    ("STOP", "stop", ""), ("stop.", "stop", ""), ("Stopall", "stop", ""), ("UNSUBSCRIBE", "stop", ""),
    ("cancel", "stop", ""), ("END", "stop", ""), ("quit", "stop", ""), ("退订", "stop", ""), ("取消订阅", "stop", ""),
    ("ＳＴＯＰ", "stop", ""),
    ("stop sending me the bill", "other", "stop sending me the bill"),
    ("START", "start", ""), ("unstop", "start", ""), ("yes", "yes", ""),
    ("the door is open", "other", "the door is open"),
])
def test_keywords(body: str, kind: str, text: str) -> None:
    assert h.parse(body) == h.Parsed(kind, text)


@pytest.mark.parametrize("text,category", [
    ("fell down the stairs", "medical"), ("my chest hurts", "medical"), ("我摔倒了", "medical"),
    ("smoke in the kitchen", "fire"), ("厨房着火了", "fire"), ("ｆｉｒｅ", "fire"),
    ("a thief broke in", "police"), ("有小偷", "police"),
    ("neighbour dispute about noise", "dispute"), ("和邻居吵架", "dispute"),
    ("", "other"), ("please come", "other"), ("fireworks", "other"),
])
def test_category_guess(text: str, category: str) -> None:
    assert h.guess_category(text) == category


def test_every_text_is_one_segment_even_with_long_names() -> None:
    for lang in sms.TEXTS:
        for key in sms.TEXTS[lang]:
            for name in ("Medic Wang", "王医生" * 30, "N" * 300, ""):
                t = sms.render(lang, key, name=name, code="123456", emergency="110", main="H-1234568",
                               word=sms.STEP_WORDS[lang]["resolved"],
                               **{**sms.offer_parts(lang, {"category": "dispute", "lat": -85.0,
                                                           "lon": -179.123456}, 9.95), "ref": "H-1234567"})
                assert sms.one_segment(t), (lang, key, t)
    t = sms.render("en", "assigned", ref="H-1001", name="Medic Wang")
    assert t == "Helpline H-1001: Medic Wang is coming to help you."
    t = sms.render("en", "assigned", ref="H-1001", name="")
    assert "a helper is coming" in t


def test_segment_rules() -> None:
    assert sms.is_gsm7("Hello @ £5 è") and not sms.is_gsm7("Hello 王") and not sms.is_gsm7("“quoted”")
    assert sms.segment_limit("a" * 200) == 160 and sms.segment_limit("王") == 70
    assert sms.sms_length("a{b}") == 6                        # extension characters count twice
    assert sms.one_segment("a" * 160) and not sms.one_segment("a" * 161)
    assert sms.one_segment("王" * 70) and not sms.one_segment("王" * 71)
    assert sms.sms_length("😀") == 2                          # one UTF-16 surrogate pair


def test_languages() -> None:
    assert sms.detect_lang("求助", "en") == "zh" and sms.detect_lang("HELP", "zh") == "en"
    assert sms.detect_lang("123 !", "zh") == "zh"
    assert sms.default_lang("+8613800138000") == "zh" and sms.default_lang("+14155550100") == "en"
    assert mask_phone("+8613800138000") == "+86*******8000"      # one masking, infra.formats


def test_rebase_points_twilio_urls_at_api_base() -> None:
    c = gateway.RebasedHttpClient("http://127.0.0.1:9999")
    url = "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json"
    assert c.rebase(url) == "http://127.0.0.1:9999/2010-04-01/Accounts/AC1/Messages.json"
    assert gateway.RebasedHttpClient("https://proxy.example/tw/").rebase(url) == \
        "https://proxy.example/tw/2010-04-01/Accounts/AC1/Messages.json"
    assert c.rebase("https://example.org/x") == "https://example.org/x"


def _cfg(**sms_keys: str) -> config_mod.Config:
    env = {"HELPLINE_SMS_PROVIDER": "twilio"}
    env.update({f"HELPLINE_SMS_{k.upper()}": v for k, v in sms_keys.items()})
    return config_mod.load(env, path=config_mod.REPO_ROOT / "config.yaml")


def test_twilio_needs_its_credentials() -> None:
    with pytest.raises(config_mod.ConfigError, match="account_sid"):
        gateway.make_gateway(_cfg(auth_token="t", from_number="+15005550006"))


async def test_a_refused_connection_is_not_sent() -> None:
    gw = gateway.make_gateway(_cfg(account_sid="AC" + "1" * 32, auth_token="t" * 32, from_number="+15005550006",
                               api_base=f"http://127.0.0.1:{free_port()}"))
    try:
        with pytest.raises(gateway.NotSent):
            await gw.send("+14155550100", "hi", None)
    finally:
        await gw.close()


def test_otp_hash_is_keyed_and_per_phone() -> None:
    a = otp.code_hash("s" * 40, "+8613800138000", "123456")
    assert a == otp.code_hash("s" * 40, "+8613800138000", "123456")
    assert a != otp.code_hash("s" * 40, "+8613800138001", "123456")
    assert a != otp.code_hash("t" * 40, "+8613800138000", "123456") and "123456" not in a


def test_trainer_tool_signs_as_twilio_does() -> None:
    params = {"From": "+8613800138000", "Body": "HELP 你好", "MessageSid": "SM1"}
    url = "https://helpline.example/sms/inbound"
    assert RequestValidator("tok").validate(url, params, signature(url, params, "tok"))
    assert replies('<?xml version="1.0"?><Response><Message>Hi &amp; bye</Message></Response>') == ["Hi & bye"]


@pytest.mark.parametrize("body,kind,code", [
    ("ABCD2345", "join", "ABCD2345"), ("join abcd2345", "join", "abcd2345"), ("加入 ABCD-2345", "join", "ABCD-2345"),
    ("JOIN: ABCD2345", "join", "ABCD2345"),
    ("SIGN 123456", "sign", "123456"), ("签字 123456", "sign", "123456"), ("sign:123456", "sign", "123456"),
    ("sign 12345", "other", ""),                    # six digits or nothing
    ("hello there", "other", ""),                   # not eight characters once normalised
    ("HELP ABCD2345", "help", ""),                  # HELP wins over a code
    ("STOP", "stop", ""), ("YES", "yes", ""),        # whole-message words first
])
def test_precedence_of_codes(body: str, kind: str, code: str) -> None:
    p = h.parse(body)
    assert (p.kind, p.code) == (kind, code)


def test_one_table_in_precedence_order_and_role_words_can_be_added() -> None:
    assert [r.kind for r in h.RULES] == [h.Kind.STOP, h.Kind.START, h.Kind.ACCEPT, h.Kind.DECLINE,
                                         h.Kind.EN_ROUTE, h.Kind.ON_SCENE, h.Kind.RESOLVED, h.Kind.DUTY_ON,
                                         h.Kind.DUTY_OFF, h.Kind.YES, h.Kind.SCORE, h.Kind.HELP, h.Kind.SAFE,
                                         h.Kind.SIGN, h.Kind.JOIN]
    for role in (None, "resident", "responder"):      # for any one sender, a word belongs to one rule
        words = [w for r in h.RULES for w in r.words if r.roles is None or role in r.roles]
        dup = {w for w in words if words.count(w) > 1}
        # the responder's YES, 1 and 2 win: they come first (a pending offer beats a satisfaction answer)
        assert dup == ({"YES", "1", "2"} if role == "responder" else set())
    assert h.parse("是", role="responder").kind == h.Kind.ACCEPT
    assert h.parse("是", role="resident").kind == h.Kind.OTHER
    assert h.parse("1", role="responder").kind == h.Kind.ACCEPT
    assert h.parse("2", role="responder").kind == h.Kind.DECLINE
    assert h.parse("3", role="responder").kind == h.Kind.SCORE
    for body, code in (("1", "1"), (" ５ ", "5"), ("4.", "4")):
        p = h.parse(body, role="resident")
        assert (p.kind, p.code) == (h.Kind.SCORE, code)
    for body in ("0", "6", "45", "5 stars", "1 more thing"):
        assert h.parse(body, role="resident").kind != h.Kind.SCORE


def test_case_texts_render_from_one_catalogue() -> None:
    from infra.texts import CaseText, Template
    t = sms.render_case(Template(CaseText.INVITATION, {"ref": "M-1", "category": "property", "filer": "Ann",
                                                        "code": "ABCD2345", "public_url": "https://h.example"}))
    assert "Reply ABCD2345 to join, or enter it at https://h.example/mediate." in t and "Ann" in t
    long = sms.render_case(Template(CaseText.PROPOSAL, {"ref": "M-1", "text": "x" * 2000, "code": "123456",
                                                         "public_url": ""}))
    assert "SIGN 123456" in long and len(long) < sms.MAX_BODY
    assert set(sms.CASE_TEXTS) == set(CaseText)
    assert sms.as_text("as written") == "as written"
