"""Help and dispatch: the incident lifecycle, matching, and the offer cascade.

    lifecycle.py     the incident's states and every rule about when it moves (pure)
    offers.py        offers, their deadlines ("when does an offer expire?"), the frozen escalation plan (pure)
    roster.py        responders' duty states and rules (pure)
    access.py        who may read an incident, who is told of its changes (pure)
    matching.py      the live GEO index and the nearby search (Redis)
    store.py         SQL for incidents and their event log, the one-statement report
    roster_store.py  SQL for responders and offers
    notices.py       the events each change queues, the change hooks (InTxn, ChangeHook)
    service.py       DispatchService: thin commands around one change helper
    duty.py          duty start / end and positions
    reads.py         the queue snapshot, an incident with its log, a client's welcome state
    sweeps.py        offer deadlines and orphaned incidents, driven from PostgreSQL
    worker.py        the offer-deadline and orphan worker every node runs
"""
