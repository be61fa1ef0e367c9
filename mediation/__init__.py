"""Online dispute mediation: cases, joint and caucus rooms, agreements, SMS parties.

    rules.py     the case lifecycle, who may do what and read which room (pure)
    views.py     the wire shape of a case as each viewer may see it (pure)
    store.py     SQL
    service.py   one transaction per change, publish after commit
    live.py      per-connection room feeds: gap-free, duplicate-free delivery
    sms.py       the SMS side: inbound texts, outbound notices
    handlers.py  the WebSocket commands;  setup.py  wiring into the app
"""
