"""Prometheus metrics, one registry per app (so tests can build several apps)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.connections = Gauge("helpline_ws_connections", "Open WebSocket connections on this node",
                                 ["role"], registry=r)
        self.incidents_by_status = Gauge("helpline_incidents", "Incidents by status (whole cluster)",
                                         ["status"], registry=r)
        self.incidents_created = Counter("helpline_incidents_created", "Incidents reported through this node",
                                         ["channel"], registry=r)
        self.offers = Counter("helpline_offer_outcomes", "How offers ended", ["outcome"], registry=r)
        self.press_to_offer = Histogram(
            "helpline_press_to_offer_seconds",
            "From a help request reaching the node to its first offer published (offers made later, e.g. by"
            " the sweeper after a Redis outage: from the request's commit)",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=r)
        # issue 12: offers that reach responders who are not looking at a page
        self.offers_sent = Counter("helpline_offers_sent", "Offers by each channel they went out on (ws, sms,"
                                   " voice, push); one offer may go out on several", ["channel"], registry=r)
        self.offer_answers = Counter("helpline_offer_answers", "Responders' answers to offers by the channel they"
                                     " came back on", ["channel", "answer"], registry=r)
        self.offer_sms_seconds = Histogram(
            "helpline_offer_sms_seconds", "An offer's text (or call), from queued to handed to the provider",
            ["kind"], buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=r)
        # issue 12: the console alarm (dispatch/acks.py)
        self.incident_acks = Counter("helpline_incident_acks", "Dispatchers' \"I'm on it\" (incident.ack) that were"
                                     " recorded (an acknowledgement already recorded is not counted again)",
                                     ["via"], registry=r)
        self.supervisor_texts = Counter("helpline_supervisor_texts", "Texts queued to supervisors about escalated"
                                        " incidents nobody acknowledged (one per supervisor phone and alert)",
                                        registry=r)
        self.commands = Counter("helpline_ws_commands", "WebSocket commands handled", ["type", "result"], registry=r)
        self.command_seconds = Histogram("helpline_ws_command_seconds", "WebSocket command handling time",
                                         ["type"], registry=r)
        self.gc_pause = Histogram("helpline_gc_pause_seconds", "Garbage collections (they hold the event loop)",
                                  ["generation"], buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
                                  registry=r)
        self.shed = Counter("helpline_ws_commands_shed", "Commands answered `unavailable` because the node was"
                            " overloaded (server.max_commands_waiting)", registry=r)
        # issue 20: the hourly SMS budget (sms.hourly_budget); an alarm when it is spent
        self.sms_over_budget = Gauge("helpline_sms_over_budget", "1 while the cluster's hourly SMS budget is spent"
                                     " and non-critical texts wait (status texts and login codes still go)",
                                     registry=r)
        self.sms_held = Counter("helpline_sms_held_over_budget", "Texts held back because the hourly SMS budget"
                                " was spent", ["kind"], registry=r)
        self.sms_sent_last_hour = Gauge("helpline_sms_sent_last_hour", "Texts sent in the last hour (cluster)",
                                        registry=r)
        self.flood_held = Counter("helpline_help_flood_held", "Unverified help requests held for a dispatcher's"
                                  " look as a possible flood (dispatch.flood_* limits)", registry=r)
        self.slow_consumers = Counter("helpline_ws_slow_consumers", "Connections closed for not reading",
                                      registry=r)
        # issue 20: the node's cap on open TCP connections (handlers/transport.py)
        self.tcp_open = Gauge("helpline_tcp_connections", "Open TCP connections on this node (serve only)",
                              registry=r)
        self.tcp_evicted = Counter("helpline_tcp_evicted", "Idle connections evicted to make room at the node's"
                                   " connection cap (server.max_open_connections)", registry=r)
        self.tcp_refused = Counter("helpline_tcp_refused", "Connections refused at once: past the cap per"
                                   " address, or at the node's cap with nothing idle to evict", registry=r)

        # issue 21: every text's end (sms/outbox.py), for the dashboard's SMS panel
        self.sms = Counter("helpline_sms", "Texts (and offer calls) handed to the provider (`sent`) or given up"
                           " on (`failed`: refused by the provider, outcome unknown, or out of retries)",
                           ["result"], registry=r)
        for result in ("sent", "failed"):
            self.sms.labels(result=result)      # exported at 0 from the start: a rate needs a first sample

        # issue 12: Web Push (push/service.py); it counts its offers in offers_sent{channel="push"} above
        self.push_sent = Counter("helpline_push_sent", "Web Push messages a push service accepted, by what they"
                                 " told (offer, escalated, priority1)", ["kind"], registry=r)
        self.push_failed = Counter("helpline_push_failed", "Web Push messages not delivered to the push service,"
                                   " by reason (timeout, error, status_NNN, queue_full)", ["kind", "reason"],
                                   registry=r)
        self.push_dropped = Counter("helpline_push_subscriptions_dropped", "Push subscriptions dropped, by why"
                                    " (gone: the push service answered 404/410; logout; limit; unsubscribed)",
                                    ["reason"], registry=r)

        # issue 15: cases followed up (mediation/tracking.py, the overdue sweep)
        self.cases_overdue = Gauge("helpline_cases_overdue", "Open mediation cases past a deadline (take_by or"
                                   " due_at), whole cluster, as of this node's last sweep", registry=r)
        self.cases_became_overdue = Counter("helpline_cases_became_overdue", "Mediation cases this node marked"
                                            " overdue (once each time a case passes a deadline)", registry=r)

    def offer_outcome(self, outcome: str) -> None:
        self.offers.labels(outcome=outcome).inc()

    def incident_status(self, status: str) -> None:
        pass  # the gauge is refreshed from PostgreSQL at scrape time (the truth is cluster-wide)
