"""The SMS channel as a domain: it imports only infra/ and libraries.

    grammar   which word wins: the keyword table and its order of precedence (pure)
    texts     what texts say, one catalogue; GSM-7/UCS-2 segment arithmetic (pure)
    gateway   the Gateway interface; Twilio (at sms.api_base) and console implementations
    contacts  per phone: language and opt-out
    inbound   each inbound MessageSid once, with its answer
    outbox    the durable outbox (the infra.texts.TextQueue both domains write to) and its worker
    status    the incident status texts (a dispatch change hook)
    otp       phone login codes and the account they verify
    purge     retention (a step of `helpline purge`)
"""
