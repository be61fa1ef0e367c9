"""Online dispute mediation: cases, joint and caucus rooms, agreements, SMS parties.

    rules.py      the case lifecycle, who may do what and read which room (pure)
    views.py      the wire shape of a case as each viewer may see it (pure)
    codes.py      join and signing codes (pure)
    store.py      SQL
    service.py    one transaction per change, publish after commit; texts through infra.texts.TextQueue
    chatbatch.py  chat messages of concurrent senders written in one statement
    live.py       per-connection room feeds: gap-free, duplicate-free delivery
    purge.py      `helpline purge` for closed cases
    agreement_pdf.py  a settled agreement (views.AgreementDoc) as PDF bytes, CJK font embedded (fpdf2)

The WebSocket commands are handlers/mediation.py; what an SMS party's text does is
handlers/sms_routing.py (an edge: it calls dispatch and mediation alike).
"""
