"""Web Push to responders and dispatchers (issue 12): offers, escalations and new priority-1 incidents
reach a phone whose screen is off.

    rules.py    pure: what a published event calls for, what a subscription must be, what it says
    store.py    the subscriptions (PostgreSQL: the truth) and the cluster's VAPID key
    vapid.py    the VAPID key pair: configured, or generated once for the whole cluster
    service.py  observes the events published after commit; a bounded queue and sender per node

A domain: it imports only infra. The edge is handlers/push.py; the composition root (server/app.py)
hands it every (channel, message) the dispatch service publishes.
"""
